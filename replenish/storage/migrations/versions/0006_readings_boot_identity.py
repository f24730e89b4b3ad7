"""a boot identity joins the readings' dedupe key (a reboot with its clock reset to the same epoch repeats (seq, ts) pairs)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Of readings that differ only in their boot, the first stored (the old key cannot hold the others).
_DUPLICATES = (
    "DELETE FROM gw_readings WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
    "(PARTITION BY device_id, slot_id, seq, device_ts ORDER BY id) AS n FROM gw_readings) AS r WHERE n > 1)"
)


def upgrade() -> None:
    with op.batch_alter_table("gw_devices") as batch_op:
        batch_op.add_column(sa.Column("boot", sa.String(length=64), nullable=True))
    # Readings stored so far, like those of devices that send no boot, have the empty boot ''.
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.add_column(sa.Column("boot", sa.String(length=64), nullable=False, server_default=""))
        batch_op.drop_constraint("uq_gw_readings_once", type_="unique")
        batch_op.create_unique_constraint("uq_gw_readings_once", ["device_id", "slot_id", "boot", "seq", "device_ts"])


def downgrade() -> None:
    op.execute(_DUPLICATES)
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.drop_constraint("uq_gw_readings_once", type_="unique")
        batch_op.create_unique_constraint("uq_gw_readings_once", ["device_id", "slot_id", "seq", "device_ts"])
        batch_op.drop_column("boot")
    # In place (SQLite 3.35 and later drop a column): a copy of gw_devices could not replace the
    # table, which gw_slots and provisioned_devices reference, while foreign keys are enforced.
    with op.batch_alter_table("gw_devices", recreate="never") as batch_op:
        batch_op.drop_column("boot")
