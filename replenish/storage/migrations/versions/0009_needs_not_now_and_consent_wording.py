"""a cancel ends the order, not the need: orders name their need and who ended them, slots keep a "not now", one open order per slot; consent records keep their words

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-08 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway

revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('awaiting_approval', 'held', 'released', 'accepted', 'shipped')"
# The page of wording version 2026-11-v1 showed only these labels beside its buttons.
_V1_WORDS = {"telemetry": "store levels", "auto_order": "auto order"}


def upgrade() -> None:
    conn = op.get_bind()
    doubled = conn.execute(sa.text(f"SELECT device_id, slot_id FROM orders WHERE {_OPEN} GROUP BY device_id, slot_id HAVING count(*) > 1")).all()
    if doubled:
        slots = ", ".join(f"{d}/{s}" for d, s in doubled)
        raise RuntimeError(f"these slots have more than one open order, which the new rule forbids; cancel all but one first: {slots}")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("need", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("ended_by", sa.String(length=16), nullable=True))
    # Every order so far was the first (and only) attempt at its need: its key is the need.
    op.execute("UPDATE orders SET need = idempotency_key")
    op.execute("UPDATE orders SET ended_by = 'household' WHERE status = 'cancelled'")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("need", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_index("ix_orders_need", ["need"])
    op.create_index(
        "uq_orders_one_open_per_slot", "orders", ["device_id", "slot_id"], unique=True, postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN)
    )
    with op.batch_alter_table("slot_settings") as batch_op:
        batch_op.add_column(sa.Column("not_before", gateway.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("not_above_level", sa.Float(), nullable=True))
    with op.batch_alter_table("consent_records") as batch_op:
        batch_op.add_column(sa.Column("wording_text", sa.Text(), nullable=True))
    for scope, words in _V1_WORDS.items():
        conn.execute(sa.text("UPDATE consent_records SET wording_text = :w WHERE scope = :s"), {"w": words, "s": scope})
    op.execute("UPDATE consent_records SET wording_text = '' WHERE wording_text IS NULL")
    with op.batch_alter_table("consent_records") as batch_op:
        batch_op.alter_column("wording_text", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("consent_records") as batch_op:
        batch_op.drop_column("wording_text")
    with op.batch_alter_table("slot_settings") as batch_op:
        batch_op.drop_column("not_above_level")
        batch_op.drop_column("not_before")
    op.drop_index("uq_orders_one_open_per_slot", table_name="orders")
    # The old key is unique per need: later attempts keep their own keys, and nothing else needs them.
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_index("ix_orders_need")
        batch_op.drop_column("ended_by")
        batch_op.drop_column("need")
