"""Database layer: engine, sessions, declarative base and framework models."""

from __future__ import annotations

from tenantkit.db.base import Base, TimestampMixin, utcnow
from tenantkit.db.engine import Database

__all__ = ["Base", "Database", "TimestampMixin", "utcnow"]
