"""Unit tests for app.flow.text (the text rule, CSV neutralising) and app.inputs.parse_id."""

from __future__ import annotations

import pytest

from app.flow.errors import InvalidInput
from app.flow.text import checked_text, is_visibly_empty, neutralise_cell, text_problem
from app.inputs import DB_INT_MAX, parse_id


@pytest.mark.parametrize("ch", [chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]])
def test_c0_controls_and_del_are_refused(ch: str) -> None:
    assert text_problem(f"a{ch}b") is not None
    assert text_problem(f"a{ch}b", multiline=True) is not None or ch in "\r"


def test_tab_is_text_and_line_breaks_only_where_multi_line() -> None:
    assert text_problem("a\tb") is None
    assert text_problem("a\nb") == "must be a single line (no line breaks)"
    assert text_problem("a\r\nb", multiline=True) is None
    assert text_problem("a\x00b", multiline=True) == (
        "contains the control character U+0000; remove it"
    )


def test_c1_controls_and_lone_surrogates_are_refused() -> None:
    assert text_problem("a\x85b", multiline=True) is not None
    assert text_problem("a\ud800b") is not None


@pytest.mark.parametrize(
    "blank", ["", " ", "\u200b", "\u200e\u200f", "\u202e", "\u2066\u2069", "\ufeff", "\u3164"]
)
def test_visually_empty(blank: str) -> None:
    assert is_visibly_empty(blank)


@pytest.mark.parametrize("text", ["a", "\u200bA", "é", "📋", "اجتماع", "\u00a0x"])
def test_visible(text: str) -> None:
    assert not is_visibly_empty(text)


def test_checked_text_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="The title contains the control character U\\+0007"):
        checked_text("a\x07", "title")
    with pytest.raises(InvalidInput, match="The name needs visible characters"):
        checked_text("\u200b", "name", visible=True)
    assert checked_text("Ann\u200b", "name", visible=True) == "Ann\u200b"


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\tx",
        "\rx",
        "＝1+1",
        "＋1",
        "－1",
        "＠SUM(A1)",
        "\ufeff=1+1",
        "\u200b=1",
        "\u200c=1",
        "\u200d=1",
        "\u2060=1",
    ],
)
def test_cells_a_spreadsheet_could_run_get_a_quote(cell: str) -> None:
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["", "Waiting", "1+1", "a=b", "Ｗaiting", "'quoted"])
def test_other_cells_stay(cell: str) -> None:
    assert neutralise_cell(cell) == cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        (str(DB_INT_MAX), DB_INT_MAX),
        (str(DB_INT_MAX + 1), None),
        (str(2**63), None),
        ("0", None),
        ("-1", None),
        ("²", None),
        ("٣", None),
        ("1e3", None),
        (" 1", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_id(value: str | None, expected: int | None) -> None:
    assert parse_id(value) == expected
