"""an index for a person's doing items

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:45:00

queries.wip_counts counts the items in the target state OR the actor's doing items. Without
an index on (owner_id, stage) the second half scanned the whole item table: 14.5 ms per pull
on a 100,000-item database whose puller owns 95,000 done items, 0.07 ms with it (SQLite's
multi-index OR; a BitmapOr on PostgreSQL).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index("ix_item_owner_id_stage", ["owner_id", "stage"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_owner_id_stage")
