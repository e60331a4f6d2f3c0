"""app channel: who filed an application (an app's client id) and sandbox rows

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # recreate="never", both ways: SQLite adds and drops plain columns in
    # place (3.35+), where a batch copy would drop ``applications`` under the
    # foreign keys of its history and outbox rows, and fail once there are any.
    with op.batch_alter_table("applications", schema=None, recreate="never") as batch_op:
        # NULL: filed by the citizen themself (every row before this revision).
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=128), nullable=True))
        # server_default so existing rows get a value without a data migration.
        batch_op.add_column(
            sa.Column("sandbox", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("outbox", schema=None, recreate="never") as batch_op:
        # Duplicated from the application so the worker can route a delivery and
        # the backlog metrics can leave sandbox rows out without a join.
        batch_op.add_column(
            sa.Column("sandbox", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("sandbox")
    with op.batch_alter_table("applications", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("sandbox")
        batch_op.drop_column("submitted_by")
