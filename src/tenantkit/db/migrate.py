"""Programmatic alembic: tenantkit's migrations plus any app's, on an async engine.

tenantkit ships its revisions as the ``tenantkit`` branch in
``tenantkit/db/migrations/versions``. An application adds its own folder as
another version location whose first revision ``depends_on`` tenantkit's
head, and upgrades ``heads``: see the *Database and migrations* docs page.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from tenantkit.db.engine import Database

__all__ = ["TENANTKIT_VERSIONS", "alembic_config", "current", "resolve_location", "upgrade"]

TENANTKIT_VERSIONS = "tenantkit.db:migrations/versions"


def resolve_location(location: str) -> str:
    """Turn ``"package:folder"`` into an absolute path; plain paths pass through."""
    if ":" in location and not Path(location).exists():
        package, _, folder = location.partition(":")
        return str(Path(str(files(package))) / folder)
    return str(Path(location).resolve())


def alembic_config(url: str, locations: Sequence[str] = ()) -> Config:
    """An alembic ``Config`` for ``url`` covering tenantkit's and ``locations``' revisions."""
    config = Config()
    config.set_main_option("script_location", resolve_location("tenantkit.db:migrations"))
    version_locations = [resolve_location(TENANTKIT_VERSIONS), *(resolve_location(x) for x in locations)]
    config.set_main_option("version_locations", " ".join(version_locations))
    config.set_main_option("path_separator", "space")
    config.attributes["url"] = url
    return config


async def upgrade(database: Database, locations: Sequence[str] = (), revision: str = "heads") -> None:
    """Apply every pending migration of tenantkit and ``locations``."""
    config = alembic_config(database.url, locations)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def current(database: Database) -> list[str]:
    """The revisions the database is at."""

    def read(connection: Connection) -> list[str]:
        return list(MigrationContext.configure(connection).get_current_heads())

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)
