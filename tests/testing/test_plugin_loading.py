"""The plugin as users load it: by its ``pytest11`` entry point, by ``-p``, configured by option or ini.

Each test runs pytest in a subprocess on a throwaway project. The entry point
is installed the way a wheel installs it (a ``.dist-info`` with
``entry_points.txt`` on the path), so the shared virtualenv stays untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAIN = """
import os

def test_plain_tests_see_nothing_of_the_plugin(request):
    assert not [key for key in os.environ if key.startswith("TENANTKIT_")]
    assert not [name for name in request.fixturenames if name.startswith("tenantkit")]
"""

ISOLATION = """
async def test_tenants_are_registered(tenantkit_tenants):
    assert tenantkit_tenants.a.tenant_id != tenantkit_tenants.b.tenant_id
    assert tenantkit_tenants.a.headers["Authorization"].startswith("Bearer ")


async def test_the_leak_is_found(tenantkit_isolation):
    report = await tenantkit_isolation.check()
    assert {leak.route for leak in report.leaks} == {"/notes/{id}"}, report.summary()
"""


def _project(tmp_path: Path, *, ini: str = "", entry_point: bool = False) -> dict[str, str]:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n" + ini
    )
    paths = [str(ROOT / "src"), str(ROOT / "examples"), str(ROOT)]
    if entry_point:
        dist = tmp_path / "site" / "tenantkit_entry-0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tenantkit-entry\nVersion: 0\n")
        (dist / "entry_points.txt").write_text("[pytest11]\ntenantkit.testing = tenantkit.testing\n")
        paths.insert(0, str(tmp_path / "site"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TENANTKIT_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _pytest(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )


def test_installed_by_its_entry_point_and_named_in_the_ini_file(tmp_path: Path) -> None:
    """Auto-loaded next to an explicit ``-p`` (no conflict); plain tests see nothing of it."""
    (tmp_path / "test_plain.py").write_text(PLAIN)
    (tmp_path / "test_isolation.py").write_text(ISOLATION)
    env = _project(
        tmp_path, ini="tenantkit_app = tests.testing.leaky_app:create_leaky_app\n", entry_point=True
    )

    result = _pytest(tmp_path, env, "-p", "tenantkit.testing")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_loaded_with_p_and_the_app_named_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "test_isolation.py").write_text(ISOLATION)
    env = _project(tmp_path)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

    result = _pytest(
        tmp_path,
        env,
        "-p",
        "asyncio",
        "-p",
        "tenantkit.testing",
        "--tenantkit-app=tests.testing.leaky_app:create_leaky_app",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
