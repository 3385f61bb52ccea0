"""docs/concepts/settings.md lists every setting with its variable and default.

Regenerate the table with ``TENANTKIT_UPDATE_DOCS=1 pytest tests/docs/test_settings_table.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from tenantkit import Settings
from tenantkit.settings import RateLimit

PAGE = Path(__file__).parents[2] / "docs" / "concepts" / "settings.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "empty"
    if isinstance(value, RateLimit):
        return str(value)  # written the way TENANTKIT_RATE_LIMIT_* accepts it
    return str(value)


def table() -> str:
    rows = ["| variable | default |", "|---|---|"]
    for name in Settings.model_fields:
        rows.append(f"| `TENANTKIT_{name.upper()}` | `{_default(name)}` |")
    return "\n".join(rows)


def test_every_setting_is_in_the_settings_page() -> None:
    text = PAGE.read_text()
    block = f"{START}\n{table()}\n{END}"
    if os.environ.get("TENANTKIT_UPDATE_DOCS") == "1":
        if START in text:
            head, _, rest = text.partition(START)
            _, _, tail = rest.partition(END)
            text = head + block + tail
        else:
            text = text.rstrip() + "\n\n## Every setting\n\n" + block + "\n"
        PAGE.write_text(text)
    assert block in PAGE.read_text(), "settings table is stale: rerun with TENANTKIT_UPDATE_DOCS=1"
