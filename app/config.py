"""Settings read from the environment (and a .env file), cached for the process."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWBOARD_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file under ./var/.",
    )
    secret_key: str = Field(
        default="", description="Signs the CSRF tokens of the sign-in, setup and reset forms."
    )
    session_days: int = Field(default=14, description="How long a browser session lives.")
    session_idle_hours: float = Field(
        default=12, description="A browser session unused this long ends (besides session_days)."
    )
    max_body_bytes: int = Field(default=1024 * 1024)
    max_header_bytes: int = Field(
        default=16 * 1024, description="Requests whose headers are larger get 431."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed; empty trusts nobody.",
    )
    db_connect_timeout_seconds: float = Field(
        default=5, description="Give up connecting to PostgreSQL after this long (503)."
    )
    db_statement_timeout_ms: int = Field(
        default=15_000, description="PostgreSQL statement_timeout per statement (503 beyond)."
    )
    db_lock_timeout_ms: int = Field(
        default=5_000, description="PostgreSQL lock_timeout: a lock waited for longer is a 503."
    )
    db_pool_timeout_seconds: float = Field(
        default=5, description="Wait at most this long for a free database connection."
    )
    db_transaction_pooling: bool = Field(
        default=False,
        description="The database URL goes through a transaction-pooling PgBouncer: the "
        "statement and lock timeouts are set in each transaction (PgBouncer refuses them as "
        "startup options) and prepared statements are off unless db_prepared_statements.",
    )
    db_prepared_statements: bool | None = Field(
        default=None,
        description="psycopg's server-side prepared statements (a query run 5 times on a "
        "connection). Empty: on, except with db_transaction_pooling (PgBouncer before 1.21, or "
        "with max_prepared_statements = 0, breaks them); true needs PgBouncer 1.21+ with "
        "max_prepared_statements > 0.",
    )
    listen_database_url: str = Field(
        default="",
        description="PostgreSQL URL for the LISTEN connection of live updates; empty: the "
        "database URL. Behind a transaction-pooling PgBouncer it must reach PostgreSQL "
        "directly, since LISTEN needs a session of its own.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address people use, for links printed by the command line.",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        VAR_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{(VAR_DIR / 'flowboard.sqlite3').resolve()}"

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept under ./var/ (mode 0600)."""
        if self.secret_key:
            return self.secret_key
        VAR_DIR.mkdir(exist_ok=True)
        path = VAR_DIR / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
