"""Tables of the admin features: grants, audit trail, runtime settings (limits, pause), broadcasts.

Kept apart from storage/models.py; they share its ``Base`` (alembic/env.py imports this module).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, utcnow


class AdminGrant(Base):
    """Admin rights an owner gave to a user (owners themselves come from ADMIN_IDS)."""

    __tablename__ = "admin_grants"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    granted_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One admin action: who did what to which target, when."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index("ix_admin_audit_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotSetting(Base):
    """A runtime setting changed from the chat (limits, pause); read on every admission."""

    __tablename__ = "bot_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BroadcastStatus(StrEnum):
    DRAFT = "draft"  # previewed, waiting for Send / Cancel
    SENDING = "sending"  # recipients exist; the broadcaster works through them
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by the broadcaster; never sent again, even after a crash
    SENT = "sent"
    BLOCKED = "blocked"  # the user blocked the bot (403)
    FAILED = "failed"


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    admin_chat_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str | None] = mapped_column(Text)  # message text, or the photo's caption
    entities: Mapped[list[Any] | None] = mapped_column(JSON)  # Telegram MessageEntity dicts
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BroadcastRecipient(Base):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (Index("ix_broadcast_recipients_status", "broadcast_id", "status"),)

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
