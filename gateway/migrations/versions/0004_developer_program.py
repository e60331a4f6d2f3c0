"""developer program: registered apps and their hashed client secrets

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("quota_requests", sa.String(length=64), nullable=True),
        sa.Column("quota_cost", sa.String(length=64), nullable=True),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index("ix_apps_owner", ["owner_kind", "owner", "created_at"], unique=False)
        batch_op.create_index("ix_apps_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "app_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["apps.client_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("app_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_secrets_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("app_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_secrets_client_id"))
    op.drop_table("app_secrets")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index("ix_apps_status_created")
        batch_op.drop_index("ix_apps_owner")
    op.drop_table("apps")
