"""One server process against two: ``GET /auth/me`` on ``inventory-app serve --workers N``.

The example app runs as deployed (production settings, PostgreSQL as the
row-level-security-bound ``tenantkit_app`` role, Redis for the stores), twice
side by side on loopback: ``inventory-app serve --workers 1`` and
``inventory-app serve --workers 2``, each the real command in a subprocess, on
one throwaway database and Redis prefix. wrk (:mod:`bench.wrk`, one thread)
drives ``GET /auth/me`` with one warm bearer token, in interleaved rounds so
that machine noise lands on both alike; the figures are the medians.

The rate limiter stays in the path with a budget that never refuses. Besides
requests per second, each round records the CPU seconds every server process
and wrk spent, and what the rest of the machine used meanwhile (from
``/proc``). On a shared machine the median mixes quiet rounds with busy ones,
so the ratio is also given round by round and over the *quiet* pairs alone
(the rest of the machine under 10 % of the CPU in both rounds of the pair).

    python -m bench workers [--quick]      # or: python -m bench.workers
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import PG_ADMIN_URL, UNLIMITED, meets, quick, scaled, target_text, write_result
from bench.real_setup import (
    PASSWORD,
    REDIS_URL,
    ROOT,
    SECRET,
    free_port,
    stop_on_sigterm,
    throwaway,
    unavailable,
)

TARGET = 1.7
#: A pair of rounds is *quiet* when, in each, the rest of the machine used less than this share of its CPU.
QUIET = 0.10
#: Many connections, so that the kernel spreads them over both processes' accept queues evenly.
CONNECTIONS = 64
PATH = "/auth/me"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from ``/proc/stat``."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def children(pid: int) -> list[int]:
    """The server processes uvicorn's supervisor ``pid`` runs (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    servers = []
    for child in found:
        try:
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                servers.append(child)
        except OSError:
            continue
    return servers


class Serve:
    """``inventory-app serve --workers N`` in a subprocess, until :meth:`stop`."""

    def __init__(self, workers: int, env: dict[str, str], log: Path) -> None:
        import httpx

        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "inventory_app.cli", "serve", "--port", str(self.port)),
                *("--workers", str(workers), "--no-migrate"),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve --workers {workers} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve --workers {workers} not healthy in 90 s")
            time.sleep(0.2)

    @property
    def pids(self) -> list[int]:
        """The server processes now: under a supervisor its children, with one worker itself.

        Read again for every round: uvicorn's supervisor replaces a worker that misses
        its health check (on a loaded machine, also one slow to start).
        """
        return children(self.process.pid) if self.workers > 1 else [self.process.pid]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Side:
    """One server's rounds: rates and the CPU its processes (and wrk) used."""

    def __init__(self, server: Serve, token: str) -> None:
        self.server, self.token = server, token
        self.rounds: list[dict[str, Any]] = []
        self.seen: set[int] = set()  # server process ids over the run (more than workers: replaced)

    def drive(self, seconds: float, *, record: bool = True) -> None:
        pids = self.server.pids
        self.seen.update(pids)
        before = [cpu_seconds(pid) for pid in pids]
        busy_before, total_before = machine_cpu()
        process = wrk.start(
            self.server.url + PATH,
            "get",
            connections=CONNECTIONS,
            seconds=seconds,
            env={"TK_TOKEN": self.token},
        )
        wrk_cpu = 0.0
        while process.poll() is None:  # wrk's CPU, sampled until it exits
            wrk_cpu = max(wrk_cpu, cpu_seconds(process.pid))
            time.sleep(0.05)
        result = wrk.finish(process)
        after = [cpu_seconds(pid) for pid in pids]
        busy_after, total_after = machine_cpu()
        server_cpu = [round(b - a, 2) for a, b in zip(before, after, strict=True)]
        figures = {
            **result.as_dict(),
            "server_cpu_s": server_cpu,
            "wrk_cpu_s": round(wrk_cpu, 2),
            # Requests per CPU second of the server processes: what one core buys, whatever the load.
            "rps_per_server_cpu_s": round(result.requests / sum(server_cpu), 1) if sum(server_cpu) else 0.0,
            # CPU seconds the rest of the machine (PostgreSQL, Redis, other work) used meanwhile.
            "other_cpu_s": round(busy_after - busy_before - sum(server_cpu) - wrk_cpu, 2),
            "machine_cpu_s": round(total_after - total_before, 2),
        }
        label = f"{self.server.workers} worker{'s' if self.server.workers > 1 else ''}"
        errors = f", {result.non2xx} non-2xx" if result.non2xx else ""
        errors += f", {result.socket_errors} socket errors" if result.socket_errors else ""
        print(
            f"    .. {label}{'' if record else ' (warm-up)'}: {result.rps:.0f}/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms; CPU s: server {server_cpu}, wrk {wrk_cpu:.2f}, "
            f"rest of the machine {figures['other_cpu_s']:.2f} of {figures['machine_cpu_s']:.2f}{errors}",
            flush=True,
        )
        if record:
            self.rounds.append(figures)

    def summary(self) -> dict[str, Any]:
        def median(key: str) -> float:
            return float(statistics.median(r[key] for r in self.rounds))

        return {
            "workers": self.server.workers,
            "rps": round(median("rps"), 1),
            "rps_per_server_cpu_s": round(median("rps_per_server_cpu_s"), 1),
            "server_cpu_s": round(statistics.median(sum(r["server_cpu_s"]) for r in self.rounds), 2),
            "wrk_cpu_s": round(median("wrk_cpu_s"), 2),
            "other_cpu_s": round(median("other_cpu_s"), 2),
            "machine_cpu_s": round(median("machine_cpu_s"), 2),
            "p50_ms": round(median("p50_ms"), 3),
            "p99_ms": round(median("p99_ms"), 3),
            "non2xx": sum(r["non2xx"] for r in self.rounds),
            "processes_seen": len(self.seen),
            "rounds": self.rounds,
        }


def environment(database: str, prefix: str, data_dir: Path) -> dict[str, str]:
    """``serve``'s environment: production, the RLS-bound role, Redis, no limit that refuses."""
    host = PG_ADMIN_URL.rsplit("/", 1)[0].rsplit("@", 1)[-1]
    paths = [str(ROOT / "src"), str(ROOT / "examples"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKIT_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "TENANTKIT_ENV": "production",
            "TENANTKIT_JWT_SECRET": SECRET,
            "TENANTKIT_DATABASE_URL": f"postgresql+asyncpg://tenantkit_app@{host}/{database}",
            "TENANTKIT_REDIS_URL": REDIS_URL,
            "TENANTKIT_REDIS_KEY_PREFIX": prefix,
            "TENANTKIT_DATA_DIR": str(data_dir),
            "TENANTKIT_LOG_LEVEL": "WARNING",
            "TENANTKIT_BCRYPT_ROUNDS": "4",  # only the set-up logs in; /auth/me never hashes
            "TENANTKIT_RATE_LIMIT_AUTH": UNLIMITED,
            "TENANTKIT_RATE_LIMIT_API": UNLIMITED,
            "TENANTKIT_RATE_LIMIT_TENANT": UNLIMITED,
            "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
    )
    return env


def token_for(url: str) -> str:
    """Register a brand owner through the API and log in: a bearer token for ``/auth/me``."""
    import httpx

    account = {"email": "owner@workers.example", "password": PASSWORD}
    with httpx.Client(base_url=url, timeout=60) as client:
        registered = client.post("/auth/register", json={**account, "tenant_name": "Workers"})
        assert registered.status_code == 201, registered.text
        login = client.post("/auth/login", json=account)
        assert login.status_code == 200, login.text
        token = str(login.json()["access_token"])
        assert client.get(PATH, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    return token


def measure() -> dict[str, Any]:
    seconds = float(os.environ.get("TENANTKIT_BENCH_SECONDS", "0")) or scaled(10, 3)
    rounds = scaled(5, 2)
    data_dir = Path(tempfile.mkdtemp(prefix="tk-bench-workers-"))
    load_before = os.getloadavg()
    servers: list[Serve] = []
    with throwaway(data_dir) as (database, prefix):
        env = environment(database, prefix, data_dir)
        try:
            for workers in (1, 2):
                servers.append(Serve(workers, env, data_dir / f"serve-{workers}.log"))
            token = token_for(servers[0].url)
            sides = [Side(server, token) for server in servers]
            for side in sides:
                side.drive(scaled(3, 1), record=False)  # warm every process's caches
            for _ in range(rounds):
                for side in sides:
                    side.drive(seconds)
        finally:
            for server in servers:
                server.stop()
    one, two = (side.summary() for side in sides)
    pairs = [
        {
            "ratio": round(b["rps"] / a["rps"], 3) if a["rps"] else float("nan"),
            "rest_share": round(
                max(a["other_cpu_s"] / a["machine_cpu_s"], b["other_cpu_s"] / b["machine_cpu_s"]), 3
            ),
        }
        for a, b in zip(one["rounds"], two["rounds"], strict=True)
    ]
    quiet = [pair["ratio"] for pair in pairs if pair["rest_share"] < QUIET]
    return {
        "backend": "postgresql+redis",
        "path": PATH,
        "connections": CONNECTIONS,
        "rounds": rounds,
        "round_seconds": seconds,
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "one": one,
        "two": two,
        "ratio": round(two["rps"] / one["rps"], 3) if one["rps"] else float("nan"),
        "target": TARGET,
        # Round by round (1 worker's i-th round against 2 workers' i-th), and over the quiet pairs only.
        "pairs": pairs,
        "quiet_ratio": round(statistics.median(quiet), 3) if quiet else None,
        "quiet_pairs": len(quiet),
    }


def show(results: dict[str, Any]) -> None:
    print(
        f"GET {results['path']} on inventory-app serve, PostgreSQL + Redis, wrk 1 thread "
        f"{results['connections']} connections, {results['rounds']} round(s) of {results['round_seconds']:g} s, "
        f"medians; {results['cpus']} CPUs, load average before {results['load_average_before'][0]:.2f}"
    )
    for side in (results["one"], results["two"]):
        print(
            f"  --workers {side['workers']}   {side['rps']:9.1f}/s   p50 {side['p50_ms']:6.2f} ms   "
            f"p99 {side['p99_ms']:6.2f} ms   {side['rps_per_server_cpu_s']:7.0f} req per server CPU s   "
            f"CPU s per round: server {side['server_cpu_s']:.2f}, wrk {side['wrk_cpu_s']:.2f}, "
            f"rest of the machine {side['other_cpu_s']:.2f} (of {side['machine_cpu_s']:.2f})"
        )
        if side["processes_seen"] > side["workers"]:
            print(
                f"    ({side['processes_seen'] - side['workers']} server process(es) replaced during the run)"
            )
    mark = "met" if meets(">=", results["ratio"], TARGET) else "MISSED"
    print(f"  2 workers / 1 worker: {results['ratio']:.2f}×   ({target_text('>=', TARGET)}: {mark})")
    pairs = ", ".join(f"{p['ratio']:.2f}× ({p['rest_share']:.0%})" for p in results["pairs"])
    print(f"  round by round (the busiest side's rest-of-the-machine share of the CPU): {pairs}")
    if results["quiet_ratio"] is not None:
        quiet_mark = "met" if meets(">=", results["quiet_ratio"], TARGET) else "MISSED"
        print(
            f"  quiet pairs only (rest of the machine < {QUIET:.0%} of the CPU): {results['quiet_ratio']:.2f}× "
            f"over {results['quiet_pairs']} pair(s)   ({target_text('>=', TARGET)}: {quiet_mark})"
        )
    else:
        print(
            f"  no quiet pair (rest of the machine < {QUIET:.0%} of the CPU): the machine was busy throughout"
        )
    server_share = results["two"]["server_cpu_s"] / results["round_seconds"]
    print(
        f"  the two server processes had {server_share:.2f} of the machine's {results['cpus']} cores "
        f"({results['two']['rps_per_server_cpu_s'] / results['one']['rps_per_server_cpu_s']:.2f}× "
        "the single process's requests per CPU second)"
    )


def run() -> dict[str, Any] | None:
    stop_on_sigterm()
    reason = unavailable()
    if reason:
        print(f"  skipped: {reason}")
        return None
    results = measure()
    show(results)
    head = {
        "label": f"GET {PATH}, serve --workers 2 / --workers 1",
        "ratio": results["ratio"],
        "op": ">=",
        "target": TARGET,
        "unit": "×",
    }
    series = [
        {"label": f"GET {PATH}, --workers {side['workers']}", "value": side["rps"], "unit": "/s"}
        for side in (results["one"], results["two"])
    ]
    tag = " [quick: rough]" if quick() else ""
    print(f"  -> {write_result('workers', results, series=series, head=head)}{tag}")
    return results


if __name__ == "__main__":
    run()
