"""Declarative base shared by every hub model, so one metadata covers all tables."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
