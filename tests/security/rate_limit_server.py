"""A kit serving ``GET /ping`` on 127.0.0.1:<port>; settings from ``TENANTKIT_*`` (two-process rate tests)."""

from __future__ import annotations

import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantkit import Settings, TenantKit


async def ping(request: Request) -> Response:
    return JSONResponse({"pong": True})


if __name__ == "__main__":
    kit = TenantKit(Settings.load())
    app = kit.build_app([Route("/ping", ping, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
