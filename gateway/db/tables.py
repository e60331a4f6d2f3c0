"""The gateway's own tables (SQLAlchemy 2 declarative).

Applications are stored first and delivered after: an application and its
outbox row are written in one transaction, so a crash can never leave one
without the other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
