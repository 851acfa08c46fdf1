"""How the app reaches PostgreSQL through a transaction-pooling PgBouncer (no database here;
tests/integration/test_pgbouncer.py runs the real thing): which connection arguments are
sent, and where LISTEN connects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import get_settings
from app.db.session import Timeouts, postgres_connect_args
from app.live.notify import listen_url

URL = "postgresql+psycopg://flowboard@127.0.0.1:6432/flowboard"
TIMEOUTS = Timeouts(connect_seconds=3, statement_ms=7000, lock_ms=3000)


@pytest.fixture
def settings_from_env() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_direct_connections_send_the_timeouts_and_may_prepare() -> None:
    args = postgres_connect_args(URL, TIMEOUTS)
    assert args["options"] == "-c statement_timeout=7000 -c lock_timeout=3000"
    assert "prepare_threshold" not in args


def test_through_a_transaction_pooler_no_startup_options_and_no_prepared_statements() -> None:
    args = postgres_connect_args(URL, TIMEOUTS, transaction_pooling=True)
    assert args == {"connect_timeout": 3, "prepare_threshold": None}


@pytest.mark.parametrize(
    ("pooling", "prepared", "threshold_off"),
    [(True, True, False), (False, False, True), (True, False, True), (False, True, False)],
)
def test_prepared_statements_follow_the_setting_when_given(
    pooling: bool, prepared: bool, threshold_off: bool
) -> None:
    args = postgres_connect_args(
        URL, TIMEOUTS, transaction_pooling=pooling, prepared_statements=prepared
    )
    assert ("prepare_threshold" in args) is threshold_off
    assert ("options" in args) is not pooling


def test_listen_connects_to_the_main_url_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, settings_from_env: None
) -> None:
    monkeypatch.delenv("FLOWBOARD_LISTEN_DATABASE_URL", raising=False)
    assert listen_url(URL) == URL
    direct = "postgresql+psycopg://flowboard@db-host:5432/flowboard"
    monkeypatch.setenv("FLOWBOARD_LISTEN_DATABASE_URL", direct)
    get_settings.cache_clear()
    assert listen_url(URL) == direct
