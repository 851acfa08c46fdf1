"""Tables of the flow rollups cache (app.services.rollups): derived data, never exported.

They live here rather than in app.db.models only until that module imports this one (see
the helper report on issue 8); app.db.metric_queries imports it, so the app registers them.
No foreign keys: a cached row proves itself through its mark's stamp of the event log, and
a restore may empty the tables in any order.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


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
