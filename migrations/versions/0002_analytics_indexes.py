"""analytics indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:20:00

Indexes behind flow analytics (app/db/metric_queries.py):
- item (board_id, done_at): items delivered in a window (cycle times, throughput,
  forecast), items done before it (CFD base) and open items (done_at IS NULL).
- item (board_id, created_at): items alive in a window and at a moment (time travel).
- block (item_id, opened_at): the blocks of the items being replayed; until now only open
  blocks were indexed by item (the partial unique index).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index("ix_item_board_id_done_at", ["board_id", "done_at"], unique=False)
        batch_op.create_index(
            "ix_item_board_id_created_at", ["board_id", "created_at"], unique=False
        )
    with op.batch_alter_table("block", schema=None) as batch_op:
        batch_op.create_index("ix_block_item_id_opened_at", ["item_id", "opened_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("block", schema=None) as batch_op:
        batch_op.drop_index("ix_block_item_id_opened_at")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_board_id_created_at")
        batch_op.drop_index("ix_item_board_id_done_at")
