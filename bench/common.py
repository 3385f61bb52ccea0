"""Shared helpers for benchmarks: raw ASGI driving, timing, printing, JSON results.

Every benchmark module has a ``run()`` and runs as ``python -m bench.<name>``.
``--quick`` on the command line or ``TENANTKIT_BENCH_QUICK=1`` in the
environment (what ``python -m bench --quick`` sets) asks for a short run.

A result file (``bench/results/<name>.json``) holds the raw figures plus two
optional keys the report reads:

- ``series``: the figures measured side by side, ``[{"label", "value", "unit"}]``;
- ``headline``: the ratio checked against the issue's target,
  ``{"label", "ratio", "op", "target", "unit"}`` with ``op`` one of ``"<="``, ``">="``,
  ``"<"`` and ``unit`` ``"×"`` for a ratio (or e.g. ``"ms"`` for an absolute target).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

RESULTS = Path(__file__).parent / "results"

#: The PostgreSQL server benchmarks create their throwaway databases on.
PG_ADMIN_URL = os.environ.get("TENANTKIT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def postgres_database(label: str) -> AsyncIterator[tuple[str, str]]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards.

    Yields ``(asyncpg DSN, SQLAlchemy URL)``.
    """
    import asyncpg

    name = f"tk_bench_{label}_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        try:
            yield dsn, dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


#: A rate limit that never trips: the limiter stays in the stack (its cost
#: counts) without answering 429 to a benchmark's thousands of requests.
UNLIMITED = "1000000000/second"


def quick() -> bool:
    """True for a short run (``--quick`` or ``TENANTKIT_BENCH_QUICK=1``)."""
    return "--quick" in sys.argv or os.environ.get("TENANTKIT_BENCH_QUICK", "") not in ("", "0")


def scaled(full: int, small: int) -> int:
    """``full`` normally, ``small`` on a quick run."""
    return small if quick() else full


def scope_for(
    path: str, headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET"
) -> dict[str, Any]:
    path, _, query = path.partition("?")  # the query string is not part of the path
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench"), *(headers or [])],
        "client": ("127.0.0.1", 12345),
        "server": ("bench", 80),
    }


def request_driver(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[], Awaitable[int]]:
    """A coroutine function sending one request to ``app`` in process; returns the status."""
    template = scope_for(path, headers)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one() -> int:
        status = 0

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(template), receive, send)
        return status

    return one


async def per_request_us(call: Callable[[], Awaitable[int]], *, n: int = 5000, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean µs per call (after a warm-up).

    A quick run divides ``n`` by 10 and does 3 rounds.
    """
    if quick():
        n, rounds = max(100, n // 10), 3
    status = 0
    for _ in range(min(n, 500)):
        status = await call()
    assert status == 200, f"benchmark endpoint answered {status}"
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            await call()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(samples)


async def side_by_side_us(
    drivers: dict[str, Callable[[], Awaitable[int]]], *, n: int = 5000, rounds: int = 5
) -> dict[str, float]:
    """µs per call of each driver: rounds interleaved, median of the round means.

    Interleaving puts every contender through the same stretch of machine
    noise, which keeps the ratios meaningful on a busy machine. A quick run
    divides ``n`` by 10 and does 3 rounds.
    """
    if quick():
        n, rounds = max(100, n // 10), 3
    for label, call in drivers.items():
        status = 0
        for _ in range(min(n, 500)):
            status = await call()
        assert status == 200, f"{label}: benchmark endpoint answered {status}"
    samples: dict[str, list[float]] = {label: [] for label in drivers}
    for _ in range(rounds):
        for label, call in drivers.items():
            started = time.perf_counter()
            for _ in range(n):
                await call()
            samples[label].append((time.perf_counter() - started) / n * 1e6)
    return {label: statistics.median(values) for label, values in samples.items()}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def figure(label: str, value: float, unit: str) -> dict[str, Any]:
    """One entry of a result's ``series``."""
    return {"label": label, "value": value, "unit": unit}


def headline(label: str, ratio: float, op: str, target: float, unit: str = "×") -> dict[str, Any]:
    """A result's ``headline``: ``ratio`` checked (never asserted) against ``op target``.

    ``unit`` is ``"×"`` for a ratio; an absolute target (a latency) names its unit.
    """
    return {"label": label, "ratio": ratio, "op": op, "target": target, "unit": unit}


def meets(op: str, value: float, target: float) -> bool:
    """Whether ``value op target`` holds."""
    return {"<=": value <= target, ">=": value >= target, "<": value < target, ">": value > target}[op]


def target_text(op: str, target: float, unit: str = "×") -> str:
    """``"target ≤ 1.50×"``."""
    symbol = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}[op]
    return f"target {symbol} {target:g}{unit}"


def line(label: str, value: float, unit: str, *, ratio: float | None = None, note: str = "") -> None:
    """Print one aligned figure, with its ratio and a note (the target) when given."""
    shown = f"{value:10.1f}" if abs(value) < 1e5 else f"{value:10.0f}"
    text = f"  {label:<44} {shown} {unit:<5}"
    if ratio is not None:
        text += f" {ratio:7.2f}×"
    if note:
        text += f"   ({note})"
    print(text)


def write_result(
    name: str,
    data: dict[str, Any],
    *,
    series: list[dict[str, Any]] | None = None,
    head: dict[str, Any] | None = None,
) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload: dict[str, Any] = {
        "benchmark": name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "quick": quick(),
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **data,
    }
    if series is not None:
        payload["series"] = series
    if head is not None:
        payload["headline"] = head
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
