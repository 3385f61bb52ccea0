"""Hook markers bound to the project name."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "tenantkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
