"""The text rule every field follows, API and forms alike (pure: no framework imports).

Control characters are refused rather than stripped: PostgreSQL cannot store NUL at all, SQLite
would keep it, and either way it would end up raw in pages and CSV. Tab is ordinary text;
newlines only where the field is multi-line (descriptions, notes, comments, reasons). Names and
titles must also show something: only whitespace, zero-width or bidi controls is empty.
"""

from __future__ import annotations

import unicodedata

from app.flow.errors import InvalidInput

# C0 controls except tab, DEL, and the C1 block; newline and CR are added back for multi-line.
_REFUSED = frozenset(chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]) - {"\t"}
_REFUSED_MULTILINE = _REFUSED - {"\n", "\r"}
# Characters that render as nothing but are not "format" (Cf) or whitespace in Unicode:
# Hangul fillers, the braille blank and the combining grapheme joiner.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")

# The same rule as a JSON Schema pattern, so the OpenAPI document states it (surrogates aside).
SINGLE_LINE_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f-\x9f]*$"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    refused = _REFUSED_MULTILINE if multiline else _REFUSED
    for ch in value:
        if ch in refused:
            if ch in "\n\r":
                return "must be a single line (no line breaks)"
            return f"contains the control character U+{ord(ch):04X}; remove it"
        if "\ud800" <= ch <= "\udfff":
            return f"contains an unpaired surrogate U+{ord(ch):04X}; send valid Unicode text"
    return None


def is_visibly_empty(value: str) -> bool:
    """True when nothing would show: whitespace, zero-width, bidi and other format characters."""
    return all(ch.isspace() or ch in _BLANK or unicodedata.category(ch) == "Cf" for ch in value)


def checked_text(value: str, what: str, *, multiline: bool = False, visible: bool = False) -> str:
    """`value` unchanged when it is storable text (and, with `visible`, shows something).

    Raises InvalidInput (422) naming `what` otherwise. Blank-only values (plain spaces) pass:
    the caller's length rule says "needs 1 to N characters" more clearly.
    """
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise InvalidInput(f"The {what} {problem}.")
    if visible and value.strip() and is_visibly_empty(value):
        raise InvalidInput(f"The {what} needs visible characters, not only blanks.")
    return value


# Cells a spreadsheet would run as a formula (OWASP "CSV injection"): the usual starts, their
# full-width forms (some spreadsheets fold them), and any cell led by a byte-order mark or a
# zero-width character, which hide such a start from the reader but not from every program.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
HIDDEN_STARTS = ("\ufeff", "\u200b", "\u200c", "\u200d", "\u2060")


def neutralise_cell(cell: str) -> str:
    """`cell` with a leading apostrophe when a spreadsheet could read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS + HIDDEN_STARTS) else cell
