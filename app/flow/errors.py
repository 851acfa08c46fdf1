"""The refusal vocabulary: each FlowError has a stable slug, an HTTP status and a sentence."""

from __future__ import annotations

from typing import Any, ClassVar


class FlowError(Exception):
    """A rule refused an action. `detail` is a sentence a person can act on."""

    slug: ClassVar[str] = "flow-error"
    status: ClassVar[int] = 409
    title: ClassVar[str] = "The flow rules refused this"

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields


class WipLimitReached(FlowError):
    slug = "wip-limit-reached"
    title = "WIP limit reached"


class PersonalWipLimitReached(FlowError):
    slug = "personal-wip-limit-reached"
    title = "Personal WIP limit reached"


class CriteriaUnmet(FlowError):
    slug = "criteria-unmet"
    title = "Readiness criteria not met"


class ItemBlocked(FlowError):
    slug = "item-blocked"
    title = "Item is blocked"


class NotReady(FlowError):
    slug = "not-ready"
    title = "Item is not ready for handoff"


class InvalidMove(FlowError):
    slug = "invalid-move"
    title = "Invalid move"


class AlreadyBlocked(FlowError):
    slug = "already-blocked"
    title = "Item is already blocked"


class VersionConflict(FlowError):
    slug = "version-conflict"
    title = "Someone changed this item first"


class StateNotEmpty(FlowError):
    slug = "state-not-empty"
    title = "State still holds items"


class InsufficientRole(FlowError):
    slug = "insufficient-role"
    status = 403
    title = "Your role does not allow this"


class EmailTaken(FlowError):
    slug = "email-taken"
    title = "Email already in use"


class NotFound(FlowError):
    """Unknown, or on a board the actor is not a member of: existence is not leaked."""

    slug = "not-found"
    status = 404
    title = "Not found"


class InvalidInput(FlowError):
    """Input that passed the schema but breaks a board's own rules (names taken, bad order)."""

    slug = "validation"
    status = 422
    title = "Invalid input"


class WrongCurrentPassword(InvalidInput):
    """A password change whose current password is wrong (422, counted like a failed sign-in)."""


class NotAuthenticated(FlowError):
    slug = "not-authenticated"
    status = 401
    title = "Not signed in"


class TooManyAttempts(FlowError):
    """Sign-in refused without checking the password; `retry_after` (seconds) says how long
    to wait and becomes the Retry-After header."""

    slug = "too-many-attempts"
    status = 429
    title = "Too many failed sign-ins"


class InsufficientScope(FlowError):
    """A read-only API token used for a write."""

    slug = "insufficient-scope"
    status = 403
    title = "This token may only read"
