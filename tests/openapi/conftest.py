"""The OpenAPI tests run on SQLite: the document does not depend on the backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend() -> str:
    """Only the embedded backend (SQLite + in-memory store)."""
    return "sqlite"
