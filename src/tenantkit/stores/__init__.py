"""Small async key-value stores: Redis in production, memory on the embedded default."""

from __future__ import annotations

from tenantkit.stores.base import Store, Subscription, create_store
from tenantkit.stores.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "Subscription", "create_store"]
