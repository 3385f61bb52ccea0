"""Drive an HTTP server with wrk from a second process, through small Lua scripts.

wrk (https://github.com/wg/wrk) is a C load generator: it costs the machine
far less per request than any Python client, so the server under test gets
the CPU. Each run writes its figures as one JSON line prefixed ``WRKJSON``
from the script's ``done()``; :func:`run` parses it.

Scripts (written to a temporary directory, parameters through the environment):

- ``get``: a fixed request with an optional ``Authorization: Bearer`` header;
  with ``TK_PATHS`` it cycles through several paths.
- ``post``: a fixed POST with a JSON body (the login storm).
- ``rotate``: refresh rotation. One connection per thread; each thread
  starts from its own refresh token, reads the successor from every response
  and presents it next, and stops at a response boundary when ``TK_SECONDS``
  are up (so no rotation is left in flight; wrk's own ``-d`` must be longer),
  reporting its newest token so the next round continues the chain. Its rate
  is timed in the script (``wrk`` itself always waits out ``-d``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRK = os.environ.get("TENANTKIT_BENCH_WRK") or shutil.which("wrk") or "/usr/bin/wrk"

_DONE = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  if setup_thread then setup_thread(thread, #threads) end
end
function done(summary, latency, requests)
  local e = summary.errors
  local tokens = {}
  local chain_rps = -1
  for _, t in ipairs(threads) do
    local token = t:get("token")
    if token then table.insert(tokens, '"' .. token .. '"') end
    local rotated, started, finished = t:get("rotated"), t:get("started"), t:get("finished")
    if rotated and started and finished and finished > started then
      chain_rps = math.max(chain_rps, 0) + rotated / (finished - started)
    end
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"chain_rps":%.3f,"tokens":[%s]}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, chain_rps, table.concat(tokens, ",")))
end
"""

SCRIPTS = {
    "get": r"""
local token = os.getenv("TK_TOKEN") or ""
local paths = {}
for p in string.gmatch(os.getenv("TK_PATHS") or "", "[^,]+") do table.insert(paths, p) end
wrk.method = "GET"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
if #paths > 0 then
  local i = 0
  function request()
    i = i % #paths + 1
    return wrk.format(nil, paths[i])
  end
end
""",
    "post": r"""
wrk.method = "POST"
wrk.body = os.getenv("TK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
""",
    "rotate": r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } tk_timespec;
           int clock_gettime(int, tk_timespec *); ]]
local ts = ffi.new("tk_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local initial = {}
for t in string.gmatch(os.getenv("TK_REFRESH") or "", "[^,]+") do table.insert(initial, t) end
function setup_thread(thread, n)
  thread:set("token", initial[n])
end
local seconds = tonumber(os.getenv("TK_SECONDS") or "1")
rotated = 0
function request()
  if not started then started = now() end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. (token or "") .. '"}')
end
function response(status, headers, body)
  if status == 200 then
    local successor = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if successor then token = successor; rotated = rotated + 1 end
  end
  finished = now()
  if finished - started >= seconds then wrk.thread:stop() end
end
""",
}


@dataclass
class WrkResult:
    """One wrk run: successful requests per second and latency percentiles."""

    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    tokens: list[str] = field(default_factory=list)
    #: For rotation: successful rotations per second, summed over the chains
    #: (each timed from its first request to its last response).
    chain_rps: float | None = None

    @property
    def rps(self) -> float:
        """Successful (2xx/3xx) responses per second."""
        if self.chain_rps is not None:
            return self.chain_rps
        return max(0, self.requests - self.non2xx) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "non2xx": self.non2xx,
            "socket_errors": self.socket_errors,
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


_script_dir: Path | None = None


def script(name: str) -> Path:
    """The path of Lua script ``name`` (written once per process)."""
    global _script_dir
    if _script_dir is None:
        _script_dir = Path(tempfile.mkdtemp(prefix="tk-bench-wrk-"))
    path = _script_dir / f"{name}.lua"
    if not path.exists():
        path.write_text(SCRIPTS[name] + _DONE)
    return path


def available() -> bool:
    return Path(WRK).exists() or shutil.which(WRK) is not None


def command(
    url: str, kind: str, *, connections: int, threads: int = 1, seconds: float = 5, timeout: float = 10
) -> list[str]:
    return [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(script(kind)),
        url,
    ]


def parse(output: str) -> WrkResult:
    for text in reversed(output.splitlines()):
        if text.startswith("WRKJSON "):
            data = json.loads(text[len("WRKJSON ") :])
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                non2xx=data["non2xx"],
                socket_errors=data["socket_errors"],
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                tokens=list(data["tokens"]),
                chain_rps=data["chain_rps"] if data["chain_rps"] >= 0 else None,
            )
    raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")


def start(
    url: str,
    kind: str,
    *,
    connections: int,
    threads: int = 1,
    seconds: float = 5,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start wrk in the background (:func:`finish` collects it)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        command(url, kind, connections=connections, threads=threads, seconds=seconds),
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 600) -> WrkResult:
    output, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{output[-2000:]}")
    return parse(output)


def run(
    url: str,
    kind: str = "get",
    *,
    connections: int = 16,
    threads: int = 1,
    seconds: float = 5,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> WrkResult:
    """Run wrk to completion and return its figures."""
    process = start(url, kind, connections=connections, threads=threads, seconds=seconds, env=env)
    return finish(process, timeout=timeout or seconds + 120)
