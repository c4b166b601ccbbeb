"""Tables of users, refresh tokens and API keys. Migration 0003 creates them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.base import Base
from hub.storage.models import Id, UTCDateTime


class User(Base):
    """A person who signs in with a password, and two-factor codes where required."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("username", name="uq_users_username"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)
    # Raised on every password, role or status change; access tokens carry it, so
    # older tokens stop working at once.
    token_version: Mapped[int] = mapped_column(Integer(), default=1)
    # NOTE: stored in clear, as the authenticator app stores it. Encrypting it with
    # a key kept outside the database would protect it against a database dump.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean(), default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer(), default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """A refresh token, stored as its digest. Each use replaces it with a new one."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        Index("ix_refresh_tokens_family", "family"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("users.id", ondelete="CASCADE", name="fk_refresh_tokens_user_id")
    )
    # Tokens rotated from one sign-in share a family. Reuse of a replaced token
    # revokes the whole family, because someone else has a copy.
    family: Mapped[str] = mapped_column(String(32))
    cookie: Mapped[bool] = mapped_column(Boolean(), default=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """A service account's key for integrations, scoped to one role."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_id", name="uq_api_keys_key_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
