"""a person's doing items per board, counted from the index alone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 01:30:00

The header's "N doing" (board_queries.doing_counts) counts the viewer's doing items per board.
With board_id IN (...) SQLite chose (board_id, owner_id) and read every item the viewer owns
on those boards (7 ms for a person owning 114,000 items, 40 % of the bench's board page); the
(owner_id, stage) index of 0005 still needed a row read per doing item. (owner_id, stage,
board_id, discarded_at) answers both that count and a pull's personal-limit count from the
index: 0.7 ms.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["owner_id", "stage", "board_id", "discarded_at"]


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index("ix_item_owner_doing", COLUMNS, unique=False)
        batch_op.drop_index("ix_item_owner_id_stage")


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index("ix_item_owner_id_stage", ["owner_id", "stage"], unique=False)
        batch_op.drop_index("ix_item_owner_doing")
