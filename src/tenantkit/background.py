"""``Background``: fire-and-forget tasks that the application's shutdown waits for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background"]

logger = logging.getLogger("tenantkit")


class Background:
    """Owns background tasks: failures are logged, :meth:`drain` waits for the rest."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background; :meth:`drain` waits for it."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, finished: asyncio.Task[Any]) -> None:
        self._tasks.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            logger.error("background task failed", exc_info=finished.exception())

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` seconds for every running task."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
