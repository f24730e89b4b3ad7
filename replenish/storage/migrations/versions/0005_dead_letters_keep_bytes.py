"""dead letters keep the payload's bytes (a NUL or invalid UTF-8 in a text column stalled ingest on PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gw_dead_letters") as batch_op:
        batch_op.add_column(sa.Column("payload_bytes", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("payload_size", sa.Integer(), nullable=True))
    # Rows kept so far hold the payload as text (decoded with replacement characters): their UTF-8
    # is the closest to what arrived. Their full size is unknown (the text was cut at 4 KiB).
    to_bytes = "convert_to(payload, 'UTF8')" if op.get_context().dialect.name == "postgresql" else "CAST(payload AS BLOB)"
    op.execute(f"UPDATE gw_dead_letters SET payload_bytes = {to_bytes}")
    with op.batch_alter_table("gw_dead_letters") as batch_op:
        batch_op.drop_column("payload")
        batch_op.alter_column("payload_bytes", new_column_name="payload", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("gw_dead_letters") as batch_op:
        batch_op.add_column(sa.Column("payload_text", sa.Text(), nullable=True))
    # As the old code wrote it: decoded with replacement characters, and without the NULs
    # PostgreSQL refuses in text. In Python, so it needs a connection (no offline downgrade).
    conn = op.get_bind()
    table = sa.table("gw_dead_letters", sa.column("id", sa.Integer()), sa.column("payload", sa.LargeBinary()), sa.column("payload_text", sa.Text()))
    rows = conn.execute(sa.select(table.c.id, table.c.payload)).fetchall()
    for row_id, payload in rows:
        text = bytes(payload).decode("utf-8", "replace").replace("\x00", "\ufffd")
        conn.execute(table.update().where(table.c.id == row_id).values(payload_text=text))
    with op.batch_alter_table("gw_dead_letters") as batch_op:
        batch_op.drop_column("payload_size")
        batch_op.drop_column("payload")
        batch_op.alter_column("payload_text", new_column_name="payload", existing_type=sa.Text(), nullable=False)
