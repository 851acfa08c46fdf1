"""indexes for the board page: its cost follows the cards shown, not the board's size

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 02:00:00

Issue 8, target 1. The board page read every open item of its board twice: a GROUP BY for
the counts (SQLite walked the whole item table in (state_id, stage) order, every board's
items) and a ROW_NUMBER over the board to keep 20 cards per run. Now each run is an
ORDER BY ... LIMIT read in the order of an index, and counts come from indexes alone:
- item (state_id, stage, id) replaces (state_id, stage): the backlog, newest first (SQLite
  kept the id in the index already; PostgreSQL walked the primary key backwards instead);
- item (state_id, stage, state_entered_at, id, discarded_at) of items not discarded: work
  states first in, first pulled, and the counts per state and stage;
- the same (with class_of_service) of expedite items only: the lane's few cards among a
  state's many, and its counts.
Neither partial index names done_at, so SQLite's statistics on it (every delivered item has
its own time, every open one NULL) cannot lure the planner to (board_id, done_at).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHOWN = "discarded_at IS NULL"
EXPEDITE = "class_of_service = 'expedite' AND discarded_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_state_id_stage")
        batch_op.create_index("ix_item_state_id_stage_id", ["state_id", "stage", "id"])
        batch_op.create_index(
            "ix_item_shown_by_state",
            ["state_id", "stage", "state_entered_at", "id", "discarded_at"],
            sqlite_where=sa.text(SHOWN),
            postgresql_where=sa.text(SHOWN),
        )
        batch_op.create_index(
            "ix_item_expedite_lane",
            ["state_id", "stage", "state_entered_at", "id", "class_of_service", "discarded_at"],
            sqlite_where=sa.text(EXPEDITE),
            postgresql_where=sa.text(EXPEDITE),
        )


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_expedite_lane")
        batch_op.drop_index("ix_item_shown_by_state")
        batch_op.drop_index("ix_item_state_id_stage_id")
        batch_op.create_index("ix_item_state_id_stage", ["state_id", "stage"])
