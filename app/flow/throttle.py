"""Sign-in throttling rules: how long a key waits after its failures, and whose block applies.

Failures are counted per client address and per account. The first FREE_FAILURES cost
nothing; each further failure makes that key wait 1 s, then 2 s, 4 s ... up to its cap.
An address's own block always applies. The account's block is what a spread-out attack
meets, so it stays short (ACCOUNT_MAX_DELAY) and does not apply at all to an address that
has signed in to that account before: an attacker elsewhere cannot lock the real user out.
Refused attempts are not counted, so the account's wait always ends and the next
attempt after it is verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=1)
ADDRESS_MAX_DELAY = timedelta(minutes=15)
ACCOUNT_MAX_DELAY = timedelta(minutes=1)
# A key whose last failure is older than this starts counting afresh.
FORGET_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Counter:
    """One key's record: failures counted so far, the last one, and the block it set."""

    failures: int
    last_failure_at: datetime | None
    blocked_until: datetime | None


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # whole seconds, at least 1
    scope: Literal["address", "account"]


def delay_after(failures: int, *, cap: timedelta) -> timedelta:
    """The wait a key gets after its `failures`-th failure: none for the free ones, then
    FIRST_DELAY doubling with each further failure, never more than `cap`."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    doublings = failures - FREE_FAILURES
    if doublings >= 30:  # 2**30 s is far past any cap; avoids huge timedeltas
        return cap
    return min(FIRST_DELAY * 2**doublings, cap)


def failures_so_far(counter: Counter | None, now: datetime) -> int:
    """The count a new failure adds to: zero once the last failure is FORGET_AFTER old."""
    if counter is None or counter.last_failure_at is None:
        return 0
    if now - counter.last_failure_at >= FORGET_AFTER:
        return 0
    return counter.failures


def after_failure(counter: Counter | None, now: datetime, *, cap: timedelta) -> Counter:
    """The key's record once one more failure is counted at `now`."""
    failures = failures_so_far(counter, now) + 1
    delay = delay_after(failures, cap=cap)
    return Counter(
        failures=failures, last_failure_at=now, blocked_until=now + delay if delay else None
    )


def wait_seconds(counter: Counter | None, now: datetime) -> int:
    """Whole seconds left on the key's block (0: not blocked)."""
    if counter is None or counter.blocked_until is None or counter.blocked_until <= now:
        return 0
    return max(1, math.ceil((counter.blocked_until - now).total_seconds()))


def refusal(*, address_wait: int, account_wait: int, known_address: bool) -> Refusal | None:
    """Whether an attempt may be verified at all. The account's block applies only to
    addresses that have not signed in to the account before."""
    if address_wait > 0:
        applies = account_wait if not known_address else 0
        return Refusal(retry_after=max(address_wait, applies), scope="address")
    if account_wait > 0 and not known_address:
        return Refusal(retry_after=account_wait, scope="account")
    return None


def wait_in_words(seconds: int) -> str:
    """'1 second', '40 seconds', '3 minutes' (rounded up), for the sign-in form."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
