"""Every rate the docs show for a rate limit is one that ``TENANTKIT_RATE_LIMIT_*`` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tenantkit import Settings
from tenantkit.errors import ConfigurationError
from tenantkit.settings import RateLimit

DOCS = Path(__file__).parents[2] / "docs"
RATE = re.compile(r"(?<![\w/.])(\d+\s*/\s*\d*\s*[a-z]+)\b")
ABOUT_RATES = re.compile(r"RATE_LIMIT|rate_limit\(|rates? (?:are|is) written", re.IGNORECASE)


def shown_rates() -> list[tuple[str, str]]:
    """``(where, rate)`` for every rate on a docs line about rate limits."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if ABOUT_RATES.search(line):
                where = f"{page.relative_to(DOCS)}:{number}"
                found.extend((where, rate) for rate in RATE.findall(line))
    return found


def test_the_docs_show_rates() -> None:
    assert len(shown_rates()) >= 10


@pytest.mark.parametrize(("where", "rate"), shown_rates())
def test_every_rate_in_the_docs_parses(where: str, rate: str) -> None:
    try:
        Settings.load(env="development", rate_limit_auth=rate)
    except ConfigurationError as exc:
        pytest.fail(f"{where}: {rate!r} is shown in the docs but refused: {exc}")


def test_defaults_round_trip_through_their_text() -> None:
    defaults = Settings.load(env="development")
    for rate in (defaults.rate_limit_auth, defaults.rate_limit_api, defaults.rate_limit_tenant):
        assert RateLimit.parse(str(rate)) == rate
    assert str(defaults.rate_limit_auth) == "20/minute"
    assert str(RateLimit(limit=5, period=10)) == "5/10second"


def test_the_http_contract_table_states_the_defaults() -> None:
    text = (DOCS / "http-api.md").read_text()
    defaults = Settings.load(env="development")
    for name in ("rate_limit_auth", "rate_limit_api", "rate_limit_tenant"):
        row = re.search(rf"\| TENANTKIT_{name.upper()} \| ([^|]+) \|", text)
        assert row is not None, name
        assert RateLimit.parse(row.group(1).strip()) == getattr(defaults, name)
