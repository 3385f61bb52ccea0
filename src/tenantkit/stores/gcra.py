"""The generic cell rate algorithm shared by the memory store (the Redis store runs it in Lua)."""

from __future__ import annotations

import math

__all__ = ["gcra"]


def gcra(tat: float, now: float, limit: int, period: float) -> tuple[bool, float, int, float]:
    """One GCRA step.

    Args:
        tat: The stored theoretical arrival time (0 when none).
        now: The current time in seconds.
        limit: Events allowed per ``period``.
        period: Window length in seconds.

    Returns:
        ``(allowed, new_tat, remaining, retry_after)``.
    """
    interval = period / limit
    if tat < now:
        tat = now
    new_tat = tat + interval
    allow_at = new_tat - period
    if allow_at > now:
        return False, tat, 0, allow_at - now
    remaining = math.floor((period - (new_tat - now)) / interval + 1e-9)
    return True, new_tat, remaining if remaining > 0 else 0, 0.0
