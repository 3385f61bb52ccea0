"""Auth tests use the shared ``api`` fixture (tests/conftest.py) and ``Api`` helper."""

from __future__ import annotations

from tests.helpers import Api

__all__ = ["Api"]
