"""The gateway's own tables (SQLAlchemy 2 declarative).

Applications are stored first and delivered after: an application and its
outbox row are written in one transaction, so a crash can never leave one
without the other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: DateTime(timezone=True)}


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("citizen", "idempotency_key", name="uq_applications_idempotency"),
        Index("ix_applications_citizen_submitted", "citizen", "submitted_at"),
        Index("ix_applications_poll", "next_poll_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str] = mapped_column(String(8), index=True)
    citizen: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    reference: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    submitted_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    next_poll_at: Mapped[dt.datetime | None]
    # The client id of the app that filed it for the citizen; NULL when the
    # citizen filed it themself (migration 0003).
    submitted_by: Mapped[str | None] = mapped_column(String(128))
    # Filed by a sandbox app: made-up data, delivered only through the sandbox
    # registry, never to an agency, and never shown to citizens or officers.
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    history: Mapped[list[ApplicationEvent]] = relationship(
        order_by="ApplicationEvent.id", lazy="selectin", cascade="all, delete-orphan"
    )


class ApplicationEvent(Base):
    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)


class OutboxItem(Base):
    """One delivery. ``state``: PENDING, DONE, DEAD (dead-lettered) or CANCELLED."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), unique=True)
    agency: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    # Copied from the application: the worker routes on it, and the backlog
    # metrics leave sandbox rows out of the agencies' figures.
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AccessEvent(Base):
    """One read or write of a citizen's personal data (auth/audit).

    Append-only and hash-chained: ``hash`` is sha256 over the row's canonical
    content and ``prev_hash``. ``seq`` is the chain position, handed out under
    the lock on ``access_chain_head``, so it is gap-free and ordered.
    ``fields`` holds form field names, never values.
    """

    __tablename__ = "access_events"
    __table_args__ = (Index("ix_access_events_citizen_seq", "citizen", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    citizen: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    agency: Mapped[str | None] = mapped_column(String(8))
    service_code: Mapped[str | None] = mapped_column(String(16))
    fields: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(128))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AccessChainHead(Base):
    """The single row (id 1) every append locks: the chain's length and last hash."""

    __tablename__ = "access_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    length: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class DeveloperApp(Base):
    """An app of the developer program (auth/apps). ``scopes`` are what it may
    ask for; ``owner_kind``/``owner`` is who registered it (a citizen
    developer's register number, or an operator's id)."""

    __tablename__ = "apps"
    __table_args__ = (
        Index("ix_apps_owner", "owner_kind", "owner", "created_at"),
        Index("ix_apps_status_created", "status", "created_at"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    quota_requests: Mapped[str | None] = mapped_column(String(64))
    quota_cost: Mapped[str | None] = mapped_column(String(64))
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    approved_at: Mapped[dt.datetime | None]

    secrets: Mapped[list[DeveloperAppSecret]] = relationship(
        order_by="DeveloperAppSecret.created_at", lazy="selectin", cascade="all, delete-orphan"
    )


class DeveloperAppSecret(Base):
    """One client secret: only its SHA-256 and a short display prefix, never
    the secret itself. ``expires_at`` is set when a rotation gives it a grace."""

    __tablename__ = "app_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("apps.client_id"), index=True)
    hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
