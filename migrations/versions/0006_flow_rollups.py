"""flow rollups

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 01:00:00

Issue 8 (long analytics windows): the Bottlenecks figures of each closed UTC day per state
(flow_day) and what they were computed from (flow_mark), so a three-year flow window replays
only its partial first and last days. Derived data: backups leave it out and it refills
itself on demand (app/services/rollups.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_day",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("doing_us", sa.BigInteger(), nullable=False),
        sa.Column("ready_us", sa.BigInteger(), nullable=False),
        sa.Column("blocked_us", sa.BigInteger(), nullable=False),
        sa.Column("total_us", sa.BigInteger(), nullable=False),
        sa.Column("sent_back_out", sa.Integer(), nullable=False),
        sa.Column("sent_back_in", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("completed_committed", sa.Integer(), nullable=False),
        sa.Column("cycle_us", sa.BigInteger(), nullable=False),
        sa.Column("active_us", sa.BigInteger(), nullable=False),
        sa.Column("visits", sa.LargeBinary(), nullable=False),
        sa.Column("waited", sa.LargeBinary(), nullable=False),
        sa.Column("wip", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("board_id", "day", "state_id", name=op.f("pk_flow_day")),
    )
    op.create_table(
        "flow_mark",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("done_state_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("board_id", name=op.f("pk_flow_mark")),
    )


def downgrade() -> None:
    op.drop_table("flow_mark")
    op.drop_table("flow_day")
