"""The schema: users, boards, states, criteria, items, blocks, comments and the event log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, UTCDateTime, utcnow

ROLES = ("viewer", "member", "reviewer", "manager")
STATE_KINDS = ("backlog", "work", "done")
STAGES = ("doing", "ready")
GATES = ("entry", "exit")
CLASSES_OF_SERVICE = ("standard", "expedite", "fixed_date", "intangible")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


TOKEN_SCOPES = ("read", "write")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a database leak reveals no token.

    `name` is None for tokens from the password flow (POST /auth/token); named tokens come
    from the Tokens page or POST /tokens, may be read-only and may expire.
    """

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint(_in("scope", TOKEN_SCOPES), name="scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    scope: Mapped[str] = mapped_column(String(8), default="write", server_default="write")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="raise")


class WebSession(Base):
    """A browser session; the cookie holds a random id, the row holds its hash and CSRF token."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Bumped at most once a minute by requests; a session idle longer than the idle timeout ends.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="raise")


class PasswordReset(Base):
    """A one-time link an admin hands over (`flowboard reset-password`); only its hash is kept."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInThrottle(Base):
    """Failed sign-ins counted per key ("account:<email>" or "ip:<address>")."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """The first answer to a create sent with an Idempotency-Key, replayed for 24 hours."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "scope", "key", name="uq_idempotency_key_user_id_scope_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # The route the key was used on (e.g. "POST /api/v1/boards/3/items").
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditEvent(Base):
    """Security-relevant happenings for site admins: sign-ins, refusals, role and token changes."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_type_id", "type", "id"),
        # "Has this account signed in from this address before?" (sign-in throttling).
        Index("ix_audit_event_actor_id_type_ip", "actor_id", "type", "ip"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    ip: Mapped[str | None] = mapped_column(String(64))
    board_id: Mapped[int | None] = mapped_column(ForeignKey("board.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Board(Base):
    __tablename__ = "board"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(10), unique=True)
    template: Mapped[str | None] = mapped_column(String(40))
    personal_wip_limit: Mapped[int | None] = mapped_column(Integer)
    expedite_exceeds_limits: Mapped[bool] = mapped_column(Boolean, default=True)
    # Item numbers come from this counter (bumped with UPDATE ... RETURNING), never from max().
    last_item_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "membership"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    board_id: Mapped[int] = mapped_column(
        ForeignKey("board.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(lazy="raise")


class State(Base):
    __tablename__ = "state"
    __table_args__ = (
        UniqueConstraint("board_id", "name", name="uq_state_board_id_name"),
        CheckConstraint(_in("kind", STATE_KINDS), name="kind"),
        CheckConstraint(_in("pull_role", ("member", "reviewer")), name="pull_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    wip_limit: Mapped[int | None] = mapped_column(Integer)
    pull_role: Mapped[str] = mapped_column(String(16), default="member")

    criteria: Mapped[list[Criterion]] = relationship(
        lazy="raise", order_by="Criterion.position", cascade="all, delete-orphan"
    )


class Criterion(Base):
    __tablename__ = "criterion"
    __table_args__ = (CheckConstraint(_in("gate", GATES), name="gate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    state_id: Mapped[int] = mapped_column(ForeignKey("state.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(300))
    gate: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)


class BlockReason(Base):
    __tablename__ = "block_reason"
    __table_args__ = (UniqueConstraint("board_id", "name", name="uq_block_reason_board_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))


class Item(Base):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("board_id", "number", name="uq_item_board_id_number"),
        CheckConstraint("stage IS NULL OR " + _in("stage", STAGES), name="stage"),
        CheckConstraint(_in("class_of_service", CLASSES_OF_SERVICE), name="class_of_service"),
        # The board page (migration 0007, app/db/board_queries.py) reads each run of cards in
        # the order of an index, a page at a time, and counts from indexes alone. The backlog,
        # newest first:
        Index("ix_item_state_id_stage_id", "state_id", "stage", "id"),
        # work states first in, first pulled, and counts per state and stage (discarded_at is
        # a column too, so SQLite counts from the index without reading the rows):
        Index(
            "ix_item_shown_by_state",
            "state_id",
            "stage",
            "state_entered_at",
            "id",
            "discarded_at",
            sqlite_where=text("discarded_at IS NULL"),
            postgresql_where=text("discarded_at IS NULL"),
        ),
        # the expedite lane, a few cards among a state's many:
        Index(
            "ix_item_expedite_lane",
            "state_id",
            "stage",
            "state_entered_at",
            "id",
            "class_of_service",
            "discarded_at",
            sqlite_where=text("class_of_service = 'expedite' AND discarded_at IS NULL"),
            postgresql_where=text("class_of_service = 'expedite' AND discarded_at IS NULL"),
        ),
        Index("ix_item_board_id_owner_id", "board_id", "owner_id"),
        # A person's doing items (the personal limit on every pull, the header's "N doing"),
        # counted from the index alone: without it the count scanned every item they ever
        # owned (migrations 0005, 0008).
        Index("ix_item_owner_doing", "owner_id", "stage", "board_id", "discarded_at"),
        # Analytics windows (migration 0002): delivered in a window, alive at a moment.
        Index("ix_item_board_id_done_at", "board_id", "done_at"),
        Index("ix_item_board_id_created_at", "board_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(24), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    class_of_service: Mapped[str] = mapped_column(String(16), default="standard")
    due_date: Mapped[date | None] = mapped_column(Date)
    state_id: Mapped[int] = mapped_column(ForeignKey("state.id"))
    stage: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    discard_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy reads it)


class CriterionCheck(Base):
    """A criterion met on an item; the row's absence means unmet."""

    __tablename__ = "criterion_check"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("item.id", ondelete="CASCADE"), primary_key=True
    )
    criterion_id: Mapped[int] = mapped_column(
        ForeignKey("criterion.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    met_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    met_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Block(Base):
    __tablename__ = "block"
    __table_args__ = (
        # One open block per item, guaranteed by the database as well as by the rule.
        Index(
            "uq_block_open_item",
            "item_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_block_board_id_opened_at", "board_id", "opened_at"),
        Index("ix_block_item_id_opened_at", "item_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    reason_id: Mapped[int] = mapped_column(ForeignKey("block_reason.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    waiting_on: Mapped[str] = mapped_column(String(200), default="")
    # The state the item was in when blocked, for delay reports without replaying events.
    state_id: Mapped[int | None] = mapped_column(ForeignKey("state.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    resolution: Mapped[str] = mapped_column(Text, default="")

    reason: Mapped[BlockReason] = relationship(lazy="raise")


class Comment(Base):
    __tablename__ = "comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """Append-only: every change on a board. History, analytics and time travel derive from it."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_board_id_id", "board_id", "id"),
        Index("ix_event_item_id_id", "item_id", "id"),
        Index("ix_event_board_id_at", "board_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_state_id: Mapped[int | None] = mapped_column(Integer)
    to_state_id: Mapped[int | None] = mapped_column(Integer)
    # The stage after the event (doing / ready / None): with to_state_id it rebuilds any moment.
    stage: Mapped[str | None] = mapped_column(String(8))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CfdDay(Base):
    """Cache (never exported, rebuilt on demand by app.services.rollups): items in each state
    at the end of a closed UTC day, so a long cumulative-flow window replays only new days."""

    __tablename__ = "cfd_day"

    board_id: Mapped[int] = mapped_column(
        ForeignKey("board.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # No foreign key: a state's history outlives the state.
    state_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    items: Mapped[int] = mapped_column(Integer)


class CfdMark(Base):
    """What the cached cfd_day rows of a board were computed from: days up to `through`, the
    done state, and the count and last id of the board's events before the end of `through`
    (a backdated event, from an import or a restore, changes them and drops the cache)."""

    __tablename__ = "cfd_mark"

    board_id: Mapped[int] = mapped_column(
        ForeignKey("board.id", ondelete="CASCADE"), primary_key=True
    )
    through: Mapped[date] = mapped_column(Date)
    done_state_id: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(Integer)


# Flow rollups (app.services.rollups): derived data, never exported. No foreign keys: a cached
# row proves itself through its mark's stamp of the event log, and a restore may empty the
# tables in any order.


class FlowDay(Base):
    """One state's flow figures over one closed UTC day, so a long Bottlenecks window replays
    only its partial first and last days. Times are integer microseconds (exact sums).
    A missing row means nothing happened there that day: WIP 0 all day, no time, no events.
    """

    __tablename__ = "flow_day"

    board_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    state_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doing_us: Mapped[int] = mapped_column(BigInteger)
    ready_us: Mapped[int] = mapped_column(BigInteger)
    blocked_us: Mapped[int] = mapped_column(BigInteger)
    total_us: Mapped[int] = mapped_column(BigInteger)
    sent_back_out: Mapped[int] = mapped_column(Integer)
    sent_back_in: Mapped[int] = mapped_column(Integer)
    # Items that arrived by completion that day (only the done state has any): how many, how
    # many of them were committed, and those ones' cycle and active time.
    completed: Mapped[int] = mapped_column(Integer)
    completed_committed: Mapped[int] = mapped_column(Integer)
    cycle_us: Mapped[int] = mapped_column(BigInteger)
    active_us: Mapped[int] = mapped_column(BigInteger)
    # Packed little-endian int64s: durations of the stays that ended that day; ids of the
    # items with Ready time that day; (WIP level, microseconds at it) pairs.
    visits: Mapped[bytes] = mapped_column(LargeBinary)
    waited: Mapped[bytes] = mapped_column(LargeBinary)
    wip: Mapped[bytes] = mapped_column(LargeBinary)


class FlowMark(Base):
    """What a board's flow_day rows were computed from: the days since..through (all of them,
    rows or not), the done state, and the count and last id of the board's events before the
    end of `through` (history written into the past changes them and drops the rows)."""

    __tablename__ = "flow_mark"

    board_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    since: Mapped[date] = mapped_column(Date)
    through: Mapped[date] = mapped_column(Date)
    done_state_id: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(Integer)
