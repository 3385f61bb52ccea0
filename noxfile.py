"""nox sessions: tests, lint, typecheck, docs, bench (one helper installs, sessions stay thin)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


def install(session: nox.Session, *extras: str) -> None:
    """Install tenantkit with ``extras`` (and the test plugin distribution for tests)."""
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)
    if "test" in extras:
        session.install("./tests/plugin_dist")


@nox.session(python=["3.11", "3.12"])
def tests(session: nox.Session) -> None:
    install(session, "test")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    install(session, "test")
    session.run("ruff", "check", "src", "tests", "examples")
    session.run("ruff", "format", "--check", "src", "tests", "examples")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    install(session, "test")
    session.run("mypy", "--strict", "src")


@nox.session
def docs(session: nox.Session) -> None:
    install(session, "docs")
    session.run("mkdocs", "build", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (``-- --quick`` for short runs); the peers are installed here only."""
    install(session, "all")
    session.install("httpx", "fastapi-users", "litestar")
    session.run("python", "-m", "bench", *session.posargs)
