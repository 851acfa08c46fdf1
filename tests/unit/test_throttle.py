"""Sign-in throttling rules (app.flow.throttle): the schedule and whose block applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.flow import throttle
from app.flow.throttle import Counter, Refusal

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize("failures", range(throttle.FREE_FAILURES))
def test_the_first_failures_are_free(failures: int) -> None:
    assert throttle.delay_after(failures, cap=throttle.ADDRESS_MAX_DELAY) == timedelta(0)


def test_the_delay_doubles_from_one_second_up_to_the_cap() -> None:
    free = throttle.FREE_FAILURES
    delays = [
        throttle.delay_after(free + n, cap=throttle.ADDRESS_MAX_DELAY) / SECOND for n in range(12)
    ]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert throttle.delay_after(10**9, cap=throttle.ADDRESS_MAX_DELAY) == timedelta(minutes=15)


def test_the_account_delay_stays_short() -> None:
    delays = [
        throttle.delay_after(n, cap=throttle.ACCOUNT_MAX_DELAY) / SECOND for n in range(5, 12)
    ]
    assert delays == [1, 2, 4, 8, 16, 32, 60]
    assert throttle.ACCOUNT_MAX_DELAY < throttle.ADDRESS_MAX_DELAY


def test_failures_count_up_and_block_once_past_the_free_ones() -> None:
    counter: Counter | None = None
    blocks = []
    for n in range(7):
        counter = throttle.after_failure(counter, NOW + n * SECOND, cap=throttle.ADDRESS_MAX_DELAY)
        blocks.append(counter.blocked_until)
    assert counter is not None and counter.failures == 7
    assert blocks[:4] == [None] * 4
    assert blocks[4] == NOW + 4 * SECOND + SECOND
    assert blocks[5] == NOW + 5 * SECOND + 2 * SECOND
    assert blocks[6] == NOW + 6 * SECOND + 4 * SECOND


def test_a_day_without_failures_starts_the_count_afresh() -> None:
    old = Counter(failures=30, last_failure_at=NOW - throttle.FORGET_AFTER, blocked_until=None)
    assert throttle.failures_so_far(old, NOW) == 0
    assert throttle.after_failure(old, NOW, cap=throttle.ADDRESS_MAX_DELAY).failures == 1
    recent = Counter(failures=30, last_failure_at=NOW - timedelta(hours=1), blocked_until=None)
    assert throttle.failures_so_far(recent, NOW) == 30


def test_wait_seconds_rounds_up_and_ends_with_the_block() -> None:
    def wait(until: datetime | None) -> int:
        return throttle.wait_seconds(Counter(6, NOW, until), NOW)

    assert wait(None) == 0
    assert wait(NOW) == 0
    assert wait(NOW - SECOND) == 0
    assert wait(NOW + timedelta(milliseconds=10)) == 1
    assert wait(NOW + timedelta(seconds=1.5)) == 2
    assert throttle.wait_seconds(None, NOW) == 0


@pytest.mark.parametrize(
    ("address_wait", "account_wait", "known", "expected"),
    [
        (0, 0, False, None),
        (0, 0, True, None),
        # The account's block stops addresses that never signed in to it...
        (0, 8, False, Refusal(8, "account")),
        # ...but not the person's own usual address.
        (0, 8, True, None),
        # An address's own block always applies, with the longer of the two waits.
        (30, 0, True, Refusal(30, "address")),
        (30, 60, False, Refusal(60, "address")),
        (30, 60, True, Refusal(30, "address")),
    ],
)
def test_whose_block_applies(
    address_wait: int, account_wait: int, known: bool, expected: Refusal | None
) -> None:
    found = throttle.refusal(
        address_wait=address_wait, account_wait=account_wait, known_address=known
    )
    assert found == expected


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (45, "45 seconds"), (60, "1 minute"), (61, "2 minutes"), (900, "15 minutes")],
)
def test_the_wait_in_words(seconds: int, words: str) -> None:
    assert throttle.wait_in_words(seconds) == words
