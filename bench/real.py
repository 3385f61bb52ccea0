"""The real deployment: the example app on PostgreSQL + Redis over HTTP, against bare floors.

Two uvicorn servers run as subprocesses on loopback, one worker each, same
settings (:mod:`bench.real_servers`): the example app exactly as deployed
(production settings, the row-level-security-bound ``tenantkit_app`` role,
Redis stores, bcrypt cost 12) and a bare Starlette app with the floors. wrk
(a second process, :mod:`bench.wrk`) drives them in interleaved rounds so
machine noise lands on both sides alike. Measured side by side:

- ``GET /auth/me`` against bare Starlette answering the same JSON;
- ``GET /products?limit=20`` against bare Starlette + asyncpg running the same query;
- refresh rotation (``POST /auth/refresh``) against a bare endpoint running the
  rotation as one statement (spend + mint, tenantkit's validity checks);
- RSS growth of the app server over a long authenticated run after warm-up
  (200,000 requests alternating ``/auth/me`` and ``/products``);
- ``GET /auth/me`` p50/p99 from one connection, idle and while N clients log
  in back to back at bcrypt cost 12.

Each run creates its own PostgreSQL database and Redis key prefix and removes
both. Skipped (with a message) when PostgreSQL, Redis or wrk is missing. The
last line printed carries the target ratios.

    python -m bench.real [--quick]          # or: python -m bench real
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import PG_ADMIN_URL, meets, quick, scaled, target_text, write_result
from bench.real_setup import (
    REDIS_URL,
    SECRET,
    Server,
    bare_chains,
    seed,
    stop_on_sigterm,
    throwaway,
    unavailable,
)

CONNECTIONS = 16
#: (label, tenantkit path, bare path, wrk script, op, target)
COMPARISONS = [
    ("GET /auth/me", "bare Starlette", "/auth/me", "/me", "get", 0.70),
    (
        "GET /products?limit=20",
        "bare Starlette + asyncpg",
        "/products?limit=20",
        "/products?limit=20",
        "get",
        0.70,
    ),
    ("refresh rotation", "raw rotation statement", "/auth/refresh", "/rotate", "rotate", 0.80),
]
STORM_TARGET_MS = 20.0
RSS_TARGET_MB = 30.0


# --------------------------------------------------------------------------- #
# Measurements
# --------------------------------------------------------------------------- #


def progress(label: str, result: wrk.WrkResult) -> None:
    """One line per wrk run, as it ends (the figures that count are printed at the end)."""
    errors = f", {result.non2xx} non-2xx" if result.non2xx else ""
    errors += f", {result.socket_errors} socket errors" if result.socket_errors else ""
    print(
        f"    .. {label}: {result.rps:.0f}/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms{errors}",
        flush=True,
    )


class Contender:
    """One side of a comparison: a URL and how wrk drives it (rotation chains carried across rounds)."""

    def __init__(
        self, name: str, url: str, script: str, token: str = "", chains: list[str] | None = None
    ) -> None:
        self.name, self.url, self.script = name, url, script
        self.token, self.chains = token, list(chains or [])
        self.rounds: list[wrk.WrkResult] = []

    def drive(self, seconds: float, *, record: bool = True) -> wrk.WrkResult:
        if self.script == "rotate":
            env = {"TK_REFRESH": ",".join(self.chains), "TK_SECONDS": str(max(1, round(seconds)))}
            n = len(self.chains)
            # Each chain stops itself after ``seconds`` at a response boundary; -d is the backstop.
            result = wrk.run(self.url, "rotate", connections=n, threads=n, seconds=seconds + 2, env=env)
            if len(result.tokens) == n:
                self.chains = result.tokens
        else:
            result = wrk.run(
                self.url, "get", connections=CONNECTIONS, seconds=seconds, env={"TK_TOKEN": self.token}
            )
        if record:
            self.rounds.append(result)
        progress(f"{self.name}{'' if record else ' (warm-up)'}", result)
        return result

    def summary(self) -> dict[str, Any]:
        def median(key: str) -> float:
            return statistics.median(getattr(r, key) for r in self.rounds)

        return {
            "rps": round(median("rps"), 1),
            "p50_ms": round(median("p50_ms"), 3),
            "p99_ms": round(median("p99_ms"), 3),
            "non2xx": sum(r.non2xx for r in self.rounds),
            "socket_errors": sum(r.socket_errors for r in self.rounds),
            "rounds": [r.as_dict() for r in self.rounds],
        }


def drive_count(
    app: Server, env: dict[str, str], requests: int, chunk: float, on_chunk: Any = None
) -> dict[str, Any]:
    """At least ``requests`` requests in wrk runs of ``chunk`` seconds; totals and the slowest p99."""
    done, seconds, p99, rounds, stalled = 0, 0.0, 0.0, 0, 0
    while done < requests:
        result = wrk.run(app.url, "get", connections=CONNECTIONS, seconds=chunk, env=env)
        progress("long run", result)
        stalled = 0 if result.requests else stalled + 1
        if stalled >= 5:
            raise RuntimeError("the long run made no progress in five runs of wrk")
        done, seconds, rounds = done + result.requests, seconds + result.seconds, rounds + 1
        p99 = max(p99, result.p99_ms)
        if on_chunk is not None:
            on_chunk()
    return {
        "requests": done,
        "seconds": round(seconds, 1),
        "rps": round(done / seconds, 1),
        "worst_chunk_p99_ms": round(p99, 3),
        "chunks": rounds,
    }


def long_run(app: Server, token: str, warmup: int, requests: int) -> dict[str, Any]:
    """RSS of the app server before and after ``requests`` authenticated requests (after ``warmup``)."""
    env = {"TK_TOKEN": token, "TK_PATHS": "/auth/me,/products?limit=20"}
    chunk = scaled(10, 1)
    drive_count(app, env, warmup, chunk)
    time.sleep(1)
    before = app.rss_mb()
    samples = [before]
    load = drive_count(app, env, requests, chunk, on_chunk=lambda: samples.append(app.rss_mb()))
    time.sleep(1)
    after = app.rss_mb()
    return {
        "warmup_requests": warmup,
        "requests": load["requests"],
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_peak_mb": round(max(samples), 1),
        "rss_samples_mb": [round(v, 1) for v in samples],
        "rss_growth_mb": round(after - before, 1),
        "load": load,
    }


def login_storm(app: Server, token: str, account: dict[str, str], seconds: float) -> dict[str, Any]:
    """``GET /auth/me`` from one connection, idle, then while N clients log in back to back."""
    clients = max(4, os.cpu_count() or 1)
    probe_env = {"TK_TOKEN": token}
    idle = wrk.run(app.url + "/auth/me", "get", connections=1, seconds=seconds, env=probe_env)
    storm_env = {"TK_BODY": json.dumps(account)}
    # A login in flight when wrk stops is not counted: logins/s is a lower bound.
    logins = wrk.start(
        app.url + "/auth/login", "post", connections=clients, seconds=seconds + 4, env=storm_env
    )
    time.sleep(1)  # let the bcrypt pool fill
    storm = wrk.run(app.url + "/auth/me", "get", connections=1, seconds=seconds, env=probe_env)
    login = wrk.finish(logins)
    return {
        "bcrypt_rounds": 12,
        "login_clients": clients,
        "seconds": seconds,
        "idle": idle.as_dict(),
        "storm": storm.as_dict(),
        "logins": login.as_dict(),
    }


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


def measure() -> dict[str, Any]:
    seconds = float(os.environ.get("TENANTKIT_BENCH_SECONDS", "0")) or scaled(10, 1)
    rounds = scaled(3, 1)
    chains = scaled(4, 2)
    requests = int(os.environ.get("TENANTKIT_BENCH_REQUESTS", "0")) or scaled(200_000, 500)
    data_dir = Path(tempfile.mkdtemp(prefix="tk-bench-real-"))
    servers: list[Server] = []
    with throwaway(data_dir) as (database, prefix):
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        host = base.rsplit("@", 1)[-1]
        config: dict[str, Any] = {
            "secret": SECRET,
            "app_url": f"postgresql+asyncpg://tenantkit_app@{host}/{database}",
            "bare_dsn": f"{base}/{database}",
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
            "data_dir": str(data_dir),
        }
        try:
            app = Server("app", config, data_dir)
            servers.append(app)
            seeded = seed(app, chains, products=25)
            bare_tokens = asyncio.run(bare_chains(database, seeded["probe_refresh"], chains))
            config.update(me=seeded["me"], tenant_id=seeded["me"]["tenant"]["id"])
            bare = Server("bare", config, data_dir)
            servers.append(bare)
            pairs = []
            for label, peer_label, app_path, bare_path, script, target in COMPARISONS:
                mine = Contender(
                    f"tenantkit {label}", app.url + app_path, script, seeded["token"], seeded["refresh"]
                )
                theirs = Contender(f"{peer_label} {label}", bare.url + bare_path, script, chains=bare_tokens)
                for contender in (mine, theirs):  # warm-up; every request must succeed
                    warm = contender.drive(scaled(3, 1), record=False)
                    if warm.non2xx or warm.socket_errors or not warm.requests:
                        raise RuntimeError(
                            f"{contender.name}: {warm.non2xx} non-2xx responses and {warm.socket_errors} "
                            f"socket errors in {warm.requests} requests during warm-up; fix the driver first"
                        )
                pairs.append((label, peer_label, target, mine, theirs))
            for _ in range(rounds):
                for *_, mine, theirs in pairs:
                    mine.drive(seconds)
                    theirs.drive(seconds)
            comparisons = []
            for label, peer_label, target, mine, theirs in pairs:
                ours, peer = mine.summary(), theirs.summary()
                # Each round ran tenantkit and its floor back to back: the ratio of a pair is
                # what noise disturbs least, so the figure is the median of the rounds' ratios.
                per_round = [
                    a.rps / b.rps if b.rps else float("nan")
                    for a, b in zip(mine.rounds, theirs.rounds, strict=True)
                ]
                ratio = statistics.median(per_round) if per_round else float("nan")
                comparisons.append(
                    {
                        "label": label,
                        "peer_label": peer_label,
                        "tenantkit": ours,
                        "peer": peer,
                        "ratio": round(ratio, 3),
                        "round_ratios": [round(r, 3) for r in per_round],
                        "op": ">=",
                        "target": target,
                    }
                )
            rss = long_run(app, seeded["token"], scaled(20_000, 100), requests)
            storm = login_storm(app, seeded["token"], seeded["account"], scaled(10, 2))
        finally:
            for server in reversed(servers):
                server.stop()
    return {
        "backend": "postgresql+redis",
        "server": {
            "uvicorn_workers": 1,
            "uvloop": importlib.util.find_spec("uvloop") is not None,
            "httptools": importlib.util.find_spec("httptools") is not None,
        },
        "connections": CONNECTIONS,
        "rounds": rounds,
        "round_seconds": seconds,
        "rotation_chains": chains,
        "comparisons": comparisons,
        "rss": rss,
        "login_storm": storm,
    }


def headlines(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The five targets of the issue, each ``{label, ratio, op, target, unit}``."""
    heads = [
        {
            "label": f"{c['label']} / {c['peer_label']}",
            "ratio": c["ratio"],
            "op": c["op"],
            "target": c["target"],
            "unit": "×",
        }
        for c in results["comparisons"]
    ]
    heads.append(
        {
            "label": "GET /auth/me p99 during login storm",
            "ratio": results["login_storm"]["storm"]["p99_ms"],
            "op": "<",
            "target": STORM_TARGET_MS,
            "unit": "ms",
        }
    )
    heads.append(
        {
            "label": f"RSS growth over {results['rss']['requests']:,} requests",
            "ratio": results["rss"]["rss_growth_mb"],
            "op": "<",
            "target": RSS_TARGET_MB,
            "unit": "MB",
        }
    )
    return heads


SHORT = ["/auth/me", "/products", "rotation", "storm p99", "RSS growth"]


def targets_line(heads: list[dict[str, Any]]) -> str:
    """One line: every target figure, with the target and whether it was met."""
    parts = []
    for short, head in zip(SHORT, heads, strict=True):
        unit = head["unit"]
        value = f"{head['ratio']:.2f}×" if unit == "×" else f"{head['ratio']:.1f} {unit}"
        mark = "met" if meets(head["op"], head["ratio"], head["target"]) else "MISSED"
        symbol = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}[head["op"]]
        parts.append(
            f"{short} {value} ({symbol} {head['target']:g}{'×' if unit == '×' else ' ' + unit} {mark})"
        )
    tag = " [quick: rough]" if quick() else ""
    return "targets (PostgreSQL + Redis)" + tag + ": " + " · ".join(parts)


def show(results: dict[str, Any]) -> None:
    server = results["server"]
    print(
        f"example app on PostgreSQL + Redis over HTTP: uvicorn 1 worker (uvloop {server['uvloop']}, "
        f"httptools {server['httptools']}), wrk {results['connections']} connections "
        f"(rotation: {results['rotation_chains']} chains), {results['rounds']} round(s) of "
        f"{results['round_seconds']:g} s, medians; each ratio is the median of the rounds' ratios"
    )
    for c in results["comparisons"]:
        for name, side in (("tenantkit", c["tenantkit"]), (c["peer_label"], c["peer"])):
            errors = f"   non-2xx {side['non2xx']}" if side["non2xx"] or side["socket_errors"] else ""
            print(
                f"  {c['label']:<24} {name:<26} {side['rps']:9.1f}/s   p50 {side['p50_ms']:7.2f} ms"
                f"   p99 {side['p99_ms']:7.2f} ms{errors}"
            )
        rounds = ", ".join(f"{r:.2f}" for r in c.get("round_ratios", []))
        print(
            f"  {'':<24} {'ratio':<26} {c['ratio']:9.2f}×   ({target_text(c['op'], c['target'])}; "
            f"median of the rounds' ratios: {rounds})"
        )
    rss = results["rss"]
    print(
        f"  RSS of the app server: {rss['rss_before_mb']:.1f} MB after {rss['warmup_requests']:,} warm-up "
        f"requests, {rss['rss_after_mb']:.1f} MB after {rss['requests']:,} more (peak {rss['rss_peak_mb']:.1f}), "
        f"growth {rss['rss_growth_mb']:+.1f} MB (target < {RSS_TARGET_MB:g} MB); "
        f"{rss['load']['rps']:.0f}/s, worst p99 {rss['load']['worst_chunk_p99_ms']:.2f} ms"
    )
    storm = results["login_storm"]
    print(
        f"  GET /auth/me from 1 connection: idle p50 {storm['idle']['p50_ms']:.2f} ms, p99 "
        f"{storm['idle']['p99_ms']:.2f} ms; during {storm['login_clients']} clients logging in (bcrypt 12, "
        f"{storm['logins']['rps']:.1f} logins/s): p50 {storm['storm']['p50_ms']:.2f} ms, "
        f"p99 {storm['storm']['p99_ms']:.2f} ms (target < {STORM_TARGET_MS:g} ms)"
    )


def run() -> dict[str, Any] | None:
    stop_on_sigterm()
    reason = unavailable()
    if reason:
        print(f"  skipped: {reason}")
        print(f"targets (PostgreSQL + Redis): not measured ({reason})")
        return None
    results = measure()
    heads = headlines(results)
    results["headlines"] = heads
    failed = {
        f"{side} {c['label']}": c[key]["non2xx"] + c[key]["socket_errors"]
        for c in results["comparisons"]
        for side, key in (("tenantkit", "tenantkit"), (c["peer_label"], "peer"))
    }
    results["failed_requests"] = failed
    results["targets_line"] = targets_line(heads)
    show(results)
    bad = {name: count for name, count in failed.items() if count}
    print(f"  non-2xx or failed requests: {bad if bad else 'none'}")
    series = [
        {"label": f"{side} {c['label']}", "value": c[key]["rps"], "unit": "/s"}
        for c in results["comparisons"]
        for side, key in (("tenantkit", "tenantkit"), (c["peer_label"], "peer"))
    ]
    print(f"  -> {write_result('real', results, series=series, head=heads[0])}")
    print(results["targets_line"])
    return results


if __name__ == "__main__":
    run()
