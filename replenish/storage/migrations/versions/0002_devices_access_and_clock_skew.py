"""device credentials, claim codes, clock skew

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gw_credentials",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", gateway.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "provisioned_devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("claim_code_hash", sa.String(length=128), nullable=False),
        sa.Column("provisioned_at", gateway.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["gw_devices.device_id"]),
        sa.PrimaryKeyConstraint("device_id"),
    )
    with op.batch_alter_table("gw_devices") as batch_op:
        batch_op.add_column(sa.Column("clock_offset_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("clock_offset_at", gateway.UTCDateTime(), nullable=True))
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.add_column(sa.Column("device_ts", gateway.UTCDateTime(), nullable=True))
    op.execute("UPDATE gw_readings SET device_ts = ts")
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.alter_column("device_ts", existing_type=gateway.UTCDateTime(), nullable=False)
        batch_op.drop_constraint("uq_gw_readings_once", type_="unique")
        batch_op.create_unique_constraint("uq_gw_readings_once", ["device_id", "slot_id", "seq", "device_ts"])


def downgrade() -> None:
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.drop_constraint("uq_gw_readings_once", type_="unique")
        batch_op.create_unique_constraint("uq_gw_readings_once", ["device_id", "slot_id", "seq", "ts"])
        batch_op.drop_column("device_ts")
    with op.batch_alter_table("gw_devices") as batch_op:
        batch_op.drop_column("clock_offset_at")
        batch_op.drop_column("clock_offset_s")
    op.drop_table("provisioned_devices")
    op.drop_table("gw_credentials")
