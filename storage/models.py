"""Typed SQLAlchemy 2 models. Every schema change comes with an Alembic revision."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: DateTime(timezone=True)}


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    GENERATED = "generated"  # images stored on disk, not yet delivered to the chat
    DONE = "done"  # delivered
    FAILED = "failed"
    CANCELLED = "cancelled"
    CENSORED = "censored"  # generated, but withheld by the safety check


PENDING_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
# What counts toward a user's limit of unfinished jobs: results not yet delivered count too, or a
# user whose results Telegram refuses could pile up jobs without end.
UNFINISHED_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.GENERATED)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram id
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="en")
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    ban_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_bot: Mapped[bool] = mapped_column(Boolean, default=False)  # a send got 403; cleared when seen again
    # Private-bot mode: the user was told once that the bot is private (bot.access).
    private_refused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)

    settings: Mapped[UserSettings] = relationship(back_populates="user", lazy="joined", uselist=False)


class UserSettings(Base):
    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(32), default="kandinsky-3.1")
    aspect_ratio: Mapped[str] = mapped_column(String(8), default="1:1")
    style: Mapped[str] = mapped_column(String(32), default="DEFAULT")
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    beautify: Mapped[bool] = mapped_column(Boolean, default=False)
    num_images: Mapped[int] = mapped_column(Integer, default=1)
    fixed_seed: Mapped[int | None] = mapped_column(BigInteger)  # "Reuse seed": every next image uses it
    # Image editing: how far a restyle moves from the photo (light | medium | strong), remembered.
    edit_strength: Mapped[str] = mapped_column(String(8), default="medium", server_default="medium")
    # The last answers to /mix's and /fuse's last question (percent of the photo / of the first photo);
    # None until the user chose once: then that question is skipped.
    mix_weight: Mapped[int | None] = mapped_column(Integer)
    fuse_weight: Mapped[int | None] = mapped_column(Integer)
    # The model of /fuse, /mix, /variations, /style and "keep the shapes": "kandinsky-2.2" (its image
    # prior and depth ControlNet) or "kandinsky-3.1" (the IP-Adapter and the HED ControlNet).
    editing_model: Mapped[str] = mapped_column(String(32), default="kandinsky-2.2", server_default="kandinsky-2.2")

    user: Mapped[User] = relationship(back_populates="settings")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_user_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # generation.backend.Mode
    model: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    result_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Deliveries Telegram refused for a passing reason (network, 5xx, flood control past the
    # session's retries); the next waits longer, and after DELIVERY_MAX_ATTEMPTS the job fails.
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    generated_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Scaling out (several worker processes on one database): who holds the job now and until when.
    # A running job's claim is renewed by its worker; a generated job's claim covers one delivery
    # attempt. An expired claim means its holder died, so another process may take the job over.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None]


class UserFace(Base):
    """The face a user set with /face, for ``@me`` prompts; /forgetface deletes the row.

    Only the Telegram file id of the photo (the pixels stay in Telegram) and what the face-swap
    pipeline derived from it (face box and landmarks, whether the photo had several faces).
    """

    __tablename__ = "user_faces"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(255))
    file_unique_id: Mapped[str | None] = mapped_column(String(64))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # faceswap.pipeline.FaceProfile
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModerationKind(StrEnum):
    PROMPT_BLOCKED = "prompt_blocked"  # the user's prompt matched the blocklist; no job was created
    BEAUTIFIED_BLOCKED = "beautified_blocked"  # the LLM's expansion matched it; the job failed
    IMAGE_CENSORED = "image_censored"  # a generated image scored over the NSFW threshold; not sent
    UPLOAD_CENSORED = "upload_censored"  # a photo the user sent for editing scored over it


class ModerationEvent(Base):
    """One refusal by the safety checks: what admins count (per kind, per user, over time)."""

    __tablename__ = "moderation_events"
    __table_args__ = (Index("ix_moderation_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # ModerationKind
    # The blocklist entry that matched, or the NSFW score: never the prompt or the image itself.
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InviteCode(Base):
    """An invitation to a private bot (``/invite``): a code in a t.me deep link, good for one user."""

    __tablename__ = "invite_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_by: Mapped[int | None] = mapped_column(BigInteger, index=True)
    used_at: Mapped[datetime | None]
