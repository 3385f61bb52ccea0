"""Private PostgreSQL and Redis servers that a test may start and kill (never the shared ones)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE, free_port


def _fail_or_skip(reason: str) -> None:
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if not path:
        _fail_or_skip(f"{name} not found: install PostgreSQL server binaries")
    return str(path)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    #: Extra ``-c name=value`` server options (a standby or its primary adds some).
    options = ""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tk-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.create()

    def create(self) -> None:
        subprocess.run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off {self.options}"
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePrimary(PrivatePostgres):
    """A private cluster that streams WAL to standbys (trust for replication from 127.0.0.1)."""

    options = "-c wal_level=replica -c max_wal_senders=5 -c wal_keep_size=64MB"

    def create(self) -> None:
        super().create()
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")


class PrivateStandby(PrivatePostgres):
    """A hot standby of ``primary`` made from a base backup (``pg_basebackup -R``), read-only."""

    options = "-c hot_standby=on -c wal_receiver_status_interval=1"

    def __init__(self, primary: PrivatePostgres) -> None:
        self.primary = primary
        super().__init__()

    def create(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_basebackup"),
                    *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
                    *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
                ]
            ),
            check=True,
            capture_output=True,
        )


class PrivateRedis:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if not shutil.which("redis-server"):
            _fail_or_skip("redis-server not found: apt-get install redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.stop()


class PrivateRedisCluster:
    """A throwaway three-master Redis Cluster on free loopback ports (no replicas)."""

    def __init__(self, masters: int = 3) -> None:
        for tool in ("redis-server", "redis-cli"):
            if not shutil.which(tool):
                _fail_or_skip(f"{tool} not found: apt-get install redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="tk-rc-"))
        self.ports = [_cluster_port() for _ in range(masters)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def nodes(self) -> str:
        """The ``TENANTKIT_REDIS_CLUSTER_NODES`` value (``host:port,...``)."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                *("--cluster-enabled", "yes"),
                *("--cluster-config-file", str(self.dir / f"nodes-{port}.conf")),
                *("--cluster-node-timeout", "2000"),
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port)

    def kill_node(self, port: int) -> None:
        """Kill one master (its slots stay uncovered until it comes back)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait()

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        self.wait_ok()

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait until every running node says ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True
                ).stdout
                for port in self.processes
            ]
            if all("cluster_state:ok" in state for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError("private redis cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free and valid too."""
    import socket

    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 10000)) != 0:
                return port


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


@contextlib.contextmanager
def private_redis_cluster() -> Iterator[PrivateRedisCluster]:
    """A started three-master cluster, killed and removed afterwards."""
    cluster = PrivateRedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
