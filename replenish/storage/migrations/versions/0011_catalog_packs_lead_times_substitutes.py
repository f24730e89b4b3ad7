"""a real catalog: products fit model and slot, have a pack size and lead-time quantiles; slots rank substitutes and may order up to a target

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Products and choices stored so far keep their meaning: every slot of their consumable, no
    # pack size (the slot's quantity is what an order carries), the fulfilment system's lead time.
    with op.batch_alter_table("products") as batch_op:
        batch_op.add_column(sa.Column("slots", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("pack_size", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("lead_p10_days", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("lead_p50_days", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("lead_p90_days", sa.Float(), nullable=True))
    with op.batch_alter_table("slot_settings") as batch_op:
        batch_op.add_column(sa.Column("target_level", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("substitutes", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    # In place (SQLite 3.35 and later drop a column): products is referenced by slot_settings.
    with op.batch_alter_table("slot_settings", recreate="never") as batch_op:
        batch_op.drop_column("substitutes")
        batch_op.drop_column("target_level")
    with op.batch_alter_table("products", recreate="never") as batch_op:
        for name in ("lead_p90_days", "lead_p50_days", "lead_p10_days", "pack_size", "unit", "slots"):
            batch_op.drop_column(name)
