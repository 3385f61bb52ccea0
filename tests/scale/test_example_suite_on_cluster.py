"""The example app's HTTP suite passes against ``inventory-app serve --workers 2`` on a Redis Cluster.

The deployment: a private three-master Redis Cluster on free loopback ports
(the session's, never the shared Redis), a fresh PostgreSQL database, and
``inventory-app serve --workers 2`` as a subprocess with
``TENANTKIT_REDIS_CLUSTER_NODES``, connected as ``tenantkit_app`` (the role
row-level security binds, as in production). Then ``pytest tests/example`` runs in a
second subprocess in live mode (``TENANTKIT_TEST_BASE_URL``, see
``tests/example/conftest.py``): every request of the suite goes over HTTP to
the two server processes, whichever accepts the connection, while its
fixtures seed and read the same database with the server's settings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tenantkit.db.rls import APP_ROLE
from tests.conftest import free_port
from tests.scale.conftest import ROOT, base_env, log_tail, started, wait_healthy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: The suite runs from one address and reuses accounts: no limit may refuse it (the limiter still runs).
UNLIMITED = "1000000/minute"
#: Fewer passing tests than this means the live run lost part of the suite (the in-process
#: set is small: see the ``in_process`` marks in tests/example).
AT_LEAST = 44  # 46 when this was written


def counts(summary: str) -> dict[str, int]:
    """``{"passed": 41, "deselected": 12, ...}`` from pytest's closing line."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


@pytest.mark.timeout(420)
def test_the_example_suite_passes_against_serve_workers_2_on_a_redis_cluster(
    pg_url: str, redis_cluster: Any, tmp_path: Path
) -> None:
    # As deployed: the server connects as the role row-level security binds (the database is
    # migrated already: the role may not run DDL, hence --no-migrate).
    scheme, rest = pg_url.split("://", 1)
    env = base_env(
        f"{scheme}://{APP_ROLE}@{rest.split('@', 1)[1]}",
        tmp_path / "data",
        redis_cluster_nodes=redis_cluster.nodes,
        redis_key_prefix=f"tkc:{uuid.uuid4().hex[:12]}:",
        rate_limit_auth=UNLIMITED,
        rate_limit_api=UNLIMITED,
        rate_limit_tenant=UNLIMITED,
    )
    port, log = free_port(), tmp_path / "server.log"
    serve = (
        "inventory_app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-migrate",
    )
    with started(env, log, *serve) as server:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server, log)

        suite_env = {
            **env,
            "TENANTKIT_TEST_BASE_URL": base,
            # The suite's own switches (required services, admin URLs) stay as they are here.
            **{k: v for k, v in os.environ.items() if k.startswith("TENANTKIT_TEST_")},
            **{k: v for k, v in os.environ.items() if k == "TENANTKIT_REQUIRE_SERVICES"},
        }
        suite_env["TENANTKIT_TEST_BASE_URL"] = base
        for name in [k for k in suite_env if k.startswith("PYTEST_")]:  # this run's (xdist worker...)
            del suite_env[name]
        result = subprocess.run(
            [
                sys.executable,
                *("-m", "pytest", "tests/example", "-p", "no:cacheprovider", "-q"),
                *("--basetemp", str(tmp_path / "suite")),
            ],
            cwd=ROOT,
            env=suite_env,
            capture_output=True,
            text=True,
            timeout=360,
            check=False,
        )
        output = result.stdout + result.stderr
        report = f"{output[-12000:]}\n--- server log ---\n{log_tail(log)}"
        assert server.poll() is None, report  # both processes served the whole run
    assert result.returncode == 0, report
    summary = counts(output.strip().splitlines()[-1])
    assert summary.get("passed", 0) >= AT_LEAST, report
    assert not {"failed", "error", "errors", "skipped"} & set(summary), report
    assert summary.get("deselected", 0) > 0, report  # live mode was on: in-process tests left out
    # Nothing fell back: the cluster answered every store call (a script in a cluster pipeline once
    # failed each rate-limit reconcile, and the limits silently became per process).
    assert "unavailable" not in log.read_text(errors="replace"), log_tail(log)
