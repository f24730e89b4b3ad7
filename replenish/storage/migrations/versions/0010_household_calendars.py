"""households' calendars of time away (typed ranges, uploaded .ics, .ics feeds) and each household's time zone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Households so far are the demo's and the first testers', all in Germany.
    with op.batch_alter_table("households") as batch_op:
        batch_op.add_column(sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="Europe/Berlin"))
    op.create_table(
        "household_calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("whole", sa.Boolean(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("last_modified", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("fetched_at", gateway.UTCDateTime(), nullable=True),
        sa.Column("checked_at", gateway.UTCDateTime(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("created_at", gateway.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("household_calendars") as batch_op:
        batch_op.create_index(batch_op.f("ix_household_calendars_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_household_calendars_checked_at"), ["checked_at"], unique=False)
    op.create_table(
        "away_ranges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("created_at", gateway.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["calendar_id"], ["household_calendars.id"]),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("away_ranges") as batch_op:
        batch_op.create_index(batch_op.f("ix_away_ranges_calendar_id"), ["calendar_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_away_ranges_household_id"), ["household_id"], unique=False)


def downgrade() -> None:
    op.drop_table("away_ranges")
    op.drop_table("household_calendars")
    # In place, as 0006 drops gw_devices.boot: claims and orders reference households.
    with op.batch_alter_table("households", recreate="never") as batch_op:
        batch_op.drop_column("timezone")
