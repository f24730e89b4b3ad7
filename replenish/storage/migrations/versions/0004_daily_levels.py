"""retention: daily aggregates of the readings older than REPLENISH_RETENTION_DAYS

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gw_daily_levels",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("slot_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("level_min", sa.Float(), nullable=False),
        sa.Column("level_max", sa.Float(), nullable=False),
        sa.Column("level_mean", sa.Float(), nullable=False),
        sa.Column("first_at", gateway.UTCDateTime(), nullable=False),
        sa.Column("first_level", sa.Float(), nullable=False),
        sa.Column("last_at", gateway.UTCDateTime(), nullable=False),
        sa.Column("last_level", sa.Float(), nullable=False),
        sa.Column("replaced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "slot_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("gw_daily_levels")
