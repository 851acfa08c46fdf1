"""cumulative-flow rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 22:55:00

Issue 8 (long analytics windows): a cache of items per state at the end of each closed UTC
day (cfd_day) and what it was computed from (cfd_mark). Derived data: backups leave it out
and it refills itself on demand (app/services/rollups.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cfd_day",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"], ["board.id"], name=op.f("fk_cfd_day_board_id_board"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("board_id", "day", "state_id", name=op.f("pk_cfd_day")),
    )
    op.create_table(
        "cfd_mark",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("done_state_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"], ["board.id"], name=op.f("fk_cfd_mark_board_id_board"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("board_id", name=op.f("pk_cfd_mark")),
    )


def downgrade() -> None:
    op.drop_table("cfd_mark")
    op.drop_table("cfd_day")
