"""Run every benchmark, each in its own subprocess, then write the report.

Usage::

    python -m bench                    # everything, full length
    python -m bench real               # the real deployment only (PostgreSQL + Redis, over HTTP)
    python -m bench workers            # serve --workers 1 against --workers 2 on GET /auth/me
    python -m bench --quick            # short runs (figures are rough)
    python -m bench --only overhead --only peers
    python -m bench --note "laptop, on battery"

The last line printed carries the targets measured on PostgreSQL + Redis
(``bench/real.py``): ``GET /auth/me`` / bare Starlette, ``GET /products`` / bare
Starlette + asyncpg, rotation / the raw rotation statement, ``/auth/me`` p99
during a login storm, and RSS growth over the long run.

A benchmark whose module is missing is skipped with a message; one that fails
or times out does not stop the others. Each writes ``bench/results/<name>.json``;
``bench/results/_run.json`` records how each run ended, and ``bench/report.py``
turns the lot into ``docs/benchmarks.md`` and ``docs/assets/benchmarks.svg``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.common import RESULTS

#: Benchmarks in the order they run: the real deployment first, then the embedded ones.
BENCHMARKS = ["real", "overhead", "peers", "scoping", "http_load", "rotation", "audit", "login_storm"]
BENCHMARKS += ["workers"]  # serve --workers 1 against --workers 2 (bench/workers.py)
#: Seconds allowed by default where the default (900, quick 300) is too short.
LONG = {"real": 3600.0}
ROOT = Path(__file__).resolve().parent.parent


def targets_line() -> str:
    """The real benchmark's targets line (``bench/results/real.json``), or why there is none."""
    path = RESULTS / "real.json"
    if not path.exists():
        return (
            "targets (PostgreSQL + Redis): not measured in this run (see the real benchmark's output above)"
        )
    line = json.loads(path.read_text()).get("targets_line")
    return str(line) if line else "targets (PostgreSQL + Redis): no targets line in bench/results/real.json"


def run_one(name: str, *, quick: bool, timeout: float) -> dict[str, object]:
    """Run ``python -m bench.<name>`` and say how it ended."""
    if importlib.util.find_spec(f"bench.{name}") is None:
        print(f"== {name}: skipped (bench/{name}.py is missing)")
        return {"status": "missing"}
    print(f"== {name}", flush=True)
    (RESULTS / f"{name}.json").unlink(missing_ok=True)
    env = dict(os.environ)
    if quick:
        env["TENANTKIT_BENCH_QUICK"] = "1"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, env=env)
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: a benchmark cleans up (servers, databases) on its way out.
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"== {name}: timed out after {timeout:g} s")
        return {"status": "timeout", "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    if returncode != 0:
        print(f"== {name}: failed (exit status {returncode})")
        return {"status": "failed", "returncode": returncode, "seconds": seconds}
    return {"status": "ok", "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="run only these (same as --only), e.g. real")
    parser.add_argument("--quick", action="store_true", help="short runs (rough figures)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per benchmark (default 900, quick 300; real 3600)",
    )
    parser.add_argument("--note", default="", help="a line about the machine, shown with the figures")
    parser.add_argument(
        "--no-report", action="store_true", help="do not rewrite docs/benchmarks.md and the chart"
    )
    args = parser.parse_args(argv)

    names = BENCHMARKS
    args.only = [*(args.only or []), *args.names]
    if args.only:
        wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
        names = [n for n in BENCHMARKS if n in wanted]
    default_timeout = 300.0 if args.quick else 900.0

    RESULTS.mkdir(parents=True, exist_ok=True)
    run_file = RESULTS / "_run.json"
    previous = json.loads(run_file.read_text()) if run_file.exists() else {}
    outcomes: dict[str, object] = dict(previous.get("benchmarks", {})) if args.only else {}
    for name in names:
        timeout = args.timeout or (default_timeout if args.quick else LONG.get(name, default_timeout))
        outcomes[name] = run_one(name, quick=args.quick, timeout=timeout)
        print(flush=True)
    run_file.write_text(
        json.dumps(
            {
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "note": (args.note or previous.get("note", "")) if args.only else args.note,
                "benchmarks": outcomes,
            },
            indent=2,
        )
        + "\n"
    )

    print("summary:")
    for name in names:
        outcome = outcomes[name]
        assert isinstance(outcome, dict)
        print(f"  {name:<12} {outcome['status']}")
    if not args.no_report:
        report.main([])
    failed = [n for n in names if isinstance(o := outcomes[n], dict) and o["status"] in ("failed", "timeout")]
    print(targets_line())  # the last line: the targets on the real deployment
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
