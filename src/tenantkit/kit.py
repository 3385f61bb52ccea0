"""``TenantKit``: the composition root an application builds once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import Any

import pluggy
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from tenantkit.auth.keys import KeySet
from tenantkit.auth.lockout import Lockout
from tenantkit.auth.middleware import AuthenticationMiddleware
from tenantkit.auth.passwords import PasswordHasher
from tenantkit.auth.revocation import RevocationList
from tenantkit.auth.service import AuthService
from tenantkit.auth.tokens import AccessTokens
from tenantkit.context import current_client_ip, current_request_id
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import User
from tenantkit.errors import ConfigurationError
from tenantkit.health import health_endpoint
from tenantkit.http import problem_exception_handlers
from tenantkit.mail import LogMailer, Mail, Mailer, SMTPMailer
from tenantkit.observability.logging import configure_logging
from tenantkit.observability.metrics import CONTENT_TYPE_LATEST, Metrics
from tenantkit.observability.middleware import RequestContextMiddleware
from tenantkit.openapi import describe
from tenantkit.plugins.manager import call_event, create_plugin_manager
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.rbac.roles import RoleBook
from tenantkit.security import RateLimiter, rate_limit_middleware, security_middleware
from tenantkit.settings import Settings
from tenantkit.stores.base import Store, create_store
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.middleware import TenantMiddleware
from tenantkit.tenancy.resolvers import build_resolvers

__all__ = ["TenantKit"]

logger = logging.getLogger("tenantkit")
audit_logger = logging.getLogger("tenantkit.audit")

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]
NIL_TENANT = uuid.UUID(int=0)


def default_mailer(settings: Settings) -> Mailer:
    """``SMTPMailer`` when ``smtp_host`` is set, else ``LogMailer`` (bodies only in development)."""
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SMTPMailer(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=password,
            starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
        )
    return LogMailer(show_body=settings.is_development)


class TenantKit:
    """Everything tenantkit gives an application, built from one ``Settings``.

    Args:
        settings: Validated settings; read from the environment when omitted.
        plugins: Plugin objects or modules registered after entry-point plugins.
        autoload_plugins: Load the ``tenantkit`` entry-point group (default:
            yes, unless ``TENANTKIT_DISABLE_PLUGIN_AUTOLOAD`` is set).
        store: A store to use instead of the one built from settings (share
            one ``MemoryStore`` between kits to simulate several processes).
        migration_locations: Extra alembic version locations (``"pkg:folder"``)
            migrated together with tenantkit's own.

    Example:
        ```python
        kit = TenantKit(Settings.load())
        app = kit.build_app(routes=[Route("/products", list_products)])
        ```
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plugins: Iterable[object] = (),
        autoload_plugins: bool | None = None,
        store: Store | None = None,
        migration_locations: Sequence[str] = (),
        permissions: Iterable[tuple[str, str]] = (),
        user_permissions: Iterable[str] = (),
        mailer: Mailer | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        s = self.settings
        self.plugins: pluggy.PluginManager = create_plugin_manager(plugins, autoload=autoload_plugins)
        self.hook = self.plugins.hook
        self.metrics = Metrics()
        self.database = Database(s.resolved_database_url, settings=s)
        self.store: Store = store if store is not None else create_store(s)
        self.metrics.watch_pool(lambda: self.database.engine.pool)
        self.rate_limiter = RateLimiter(self.store, metrics=self.metrics)
        self.mailer: Mailer = mailer if mailer is not None else default_mailer(s)
        self.migration_locations = [*migration_locations]
        for extra in self.hook.tenantkit_migration_locations():
            self.migration_locations.extend(extra or ())

        self.permissions = PermissionRegistry()
        self.permissions.register_many(permissions)
        for registered in self.hook.tenantkit_register_permissions():
            self.permissions.register_many(registered or ())
        self.roles = RoleBook(self.permissions, self.database, self.store, user_permissions=user_permissions)
        self.directory = TenantDirectory(self.database, self.store, ttl=s.tenant_cache_ttl or 60)

        pepper = s.password_pepper.get_secret_value().encode() if s.password_pepper else None
        self.passwords = PasswordHasher(s.bcrypt_rounds, pepper=pepper)
        self.keys = KeySet.from_settings(s)
        self.tokens = AccessTokens(
            self.keys,
            issuer=s.jwt_issuer,
            audience=s.jwt_audience,
            ttl=s.access_token_ttl,
            leeway=s.jwt_leeway,
            cache_size=s.token_cache_size,
        )
        self.revocations = RevocationList(
            self.store, mark_ttl=s.access_token_ttl + s.jwt_leeway + 60, fail_closed=s.revocation_fail_closed
        )
        self.lockout = Lockout(self.store, threshold=s.lockout_threshold, seconds=s.lockout_seconds)
        self.auth = AuthService(self)

        from tenantkit.files import FileService, create_storage
        from tenantkit.webhooks import WebhookDispatcher

        self.storage = create_storage(s, local_secret=self.derive_key("files"))
        self.files = FileService(
            self.storage, self.database, url_ttl=s.file_url_ttl, on_uploaded=self._file_uploaded
        )
        self.webhooks = WebhookDispatcher.from_settings(self.database, s, hook=self.hook)
        from tenantkit.audit import AuditLog
        from tenantkit.jobs import JobRunner

        self.audit_log = AuditLog(
            self.database,
            batch_size=s.audit_batch_size,
            flush_ms=s.audit_flush_ms,
            max_buffer=s.audit_buffer_max,
        )
        self.jobs = JobRunner(self)
        self.hook.tenantkit_register_tasks(kit=self)
        #: Background loops (webhook delivery) run in process on the embedded default;
        #: with Redis configured, ``tenantkit worker`` runs them.
        self.inline_workers = s.redis_url is None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self.hook.tenantkit_configure(kit=self)

    def __repr__(self) -> str:
        return (
            f"TenantKit(env={self.settings.env!r}, database={self.database.dialect!r}, "
            f"store={self.store.name!r})"
        )

    # ------------------------------------------------------------------ #
    # What an application mounts
    # ------------------------------------------------------------------ #

    @property
    def middleware(self) -> list[Middleware]:
        """The middleware stack, outermost first, for ``Starlette(middleware=...)``."""
        settings = self.settings
        resolvers = build_resolvers(
            settings.tenant_resolvers,
            header=settings.tenant_header,
            base_domain=settings.tenant_base_domain,
            path_prefix=settings.tenant_path_prefix,
            hook=self.hook,
        )
        return [
            Middleware(
                RequestContextMiddleware, trusted_proxies=settings.trusted_proxies, metrics=self.metrics
            ),
            *security_middleware(self),
            Middleware(AuthenticationMiddleware, kit=self),
            rate_limit_middleware(self),
            Middleware(TenantMiddleware, kit=self, resolvers=resolvers),
        ]

    @property
    def routes(self) -> list[BaseRoute]:
        """tenantkit's routes: health, metrics (auth, admin... as features land)."""
        from tenantkit.audit import audit_routes
        from tenantkit.auth.routes import auth_routes
        from tenantkit.files import LocalStorage, local_file_routes
        from tenantkit.jobs import job_routes
        from tenantkit.rbac.routes import admin_routes

        files = local_file_routes(self.storage) if isinstance(self.storage, LocalStorage) else []
        return [
            Route("/health", health_endpoint(self), methods=["GET"], name="health"),
            Route("/metrics", self._metrics_endpoint, methods=["GET"], name="metrics"),
            *auth_routes(self),
            *admin_routes(self),
            *audit_routes(self),
            *job_routes(self),
            *files,
        ]

    @property
    def exception_handlers(self) -> dict[Any, Any]:
        """Handlers rendering every error as problem+json."""
        return problem_exception_handlers()

    @describe(summary="Prometheus metrics", media_type="text/plain", tags=["platform"], public=True)
    async def _metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: ASGIApp | None = None) -> AsyncIterator[None]:
        """Open and close the database, store and workers around an app's life."""
        if isinstance(app, Starlette):
            self.check_routes(app.routes)
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        """Prepare resources (idempotent); ``lifespan`` calls it."""
        if self._started:
            return
        configure_logging(self.settings.log_level, json_lines=self.settings.log_json)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        from tenantkit.tenancy.rls import check_rls_enforced

        await check_rls_enforced(self.database, self.settings.env)
        await self.revocations.start()
        await self.directory.start()
        await self.roles.start()
        await self.audit_log.start()
        await self.jobs.startup()
        ensure_bucket = getattr(self.storage, "ensure_bucket", None)
        if ensure_bucket is not None:
            try:
                await ensure_bucket()
            except Exception as exc:
                logger.warning("object storage not ready: %s", type(exc).__name__)
        self._stop = asyncio.Event()
        if self.inline_workers:
            self.spawn(self.webhooks.run_forever(stop=self._stop))
        self._started = True

    async def shutdown(self) -> None:
        """Release resources; ``lifespan`` calls it."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        await self.jobs.shutdown()
        await self.audit_log.stop()
        await self.roles.stop()
        await self.directory.stop()
        await self.revocations.stop()
        self.passwords.close()
        close_storage = getattr(self.storage, "close", None)
        if close_storage is not None:
            await close_storage()
        await self.store.close()
        await self.database.dispose()

    def check_routes(self, routes: Iterable[BaseRoute]) -> None:
        """Refuse to start when a route requires a permission no registry knows."""
        unknown: set[str] = set()
        for route in routes:
            if isinstance(route, Mount):
                self.check_routes(route.routes or ())
                continue
            endpoint = getattr(route, "endpoint", None)
            candidates = [endpoint]
            if isinstance(endpoint, type):
                candidates = [getattr(endpoint, m, None) for m in ("get", "post", "put", "patch", "delete")]
            for candidate in candidates:
                guard = getattr(candidate, "__tenantkit_guard__", None) or {}
                unknown.update(p for p in guard.get("permissions", ()) if p not in self.permissions)
        if unknown:
            raise ConfigurationError(f"routes require unregistered permissions: {sorted(unknown)}")

    # ------------------------------------------------------------------ #
    # Services used across modules
    # ------------------------------------------------------------------ #

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background; the lifespan waits for it on shutdown."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("background task failed", exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for ``label`` derived from the token-signing key material.

        Every instance configured with the same keys derives the same value, so
        signed URLs and similar artefacts verify anywhere.
        """
        material = self.keys.current.signing
        if not isinstance(material, bytes):
            from cryptography.hazmat.primitives import serialization

            material = material.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        return hmac.new(material, b"tenantkit-derived-key:" + label.encode(), hashlib.sha256).digest()

    async def _file_uploaded(self, file: dict[str, Any]) -> None:
        await self.emit("file_uploaded", file=file)
        self.audit("file.uploaded", tenant_id=uuid.UUID(str(file["tenant_id"])), target=str(file["id"]))

    async def send_mail(self, mail: Mail) -> None:
        """Hand ``mail`` to the mailer, through the job queue for a ``deferred`` one (SMTP).

        A queued mail is retried with backoff and dead-lettered after
        ``job_max_attempts``; a slow mail server never slows the request.
        """
        if getattr(self.mailer, "deferred", False):
            from tenantkit.jobs import SEND_MAIL

            await self.jobs.enqueue(SEND_MAIL, mail.to_dict())
        else:
            await self.mailer.send(mail)

    def audit(
        self,
        action: str,
        *,
        tenant_id: uuid.UUID | None = None,
        actor_id: uuid.UUID | None = None,
        target: str | None = None,
        ip: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record a security event (buffered; never blocks the request)."""
        event = {
            "action": action,
            "tenant_id": str(tenant_id or NIL_TENANT),
            "actor_id": str(actor_id) if actor_id else None,
            "target": target,
            "ip": ip or current_client_ip(),
            "request_id": current_request_id(),
            "data": data or {},
            "created_at": utcnow().isoformat(),
        }
        audit_logger.info(action, extra={"audit": event})
        self.audit_log.record(event)
        self.spawn(self.emit("audit_event", event=event))

    @contextlib.contextmanager
    def unscoped(self, reason: str, *, actor_id: uuid.UUID | None = None) -> Any:
        """Cross tenants explicitly: logged and audited."""
        from tenantkit.tenancy.scoping import unscoped

        self.audit("tenancy.unscoped", actor_id=actor_id, data={"reason": reason})
        with unscoped(reason):
            yield

    async def user_email(self, user_id: uuid.UUID) -> str | None:
        async with self.database.session() as session:
            return await session.scalar(select(User.email).where(User.id == user_id))

    def build_app(
        self,
        routes: Sequence[BaseRoute] = (),
        *,
        middleware: Sequence[Middleware] = (),
        lifespan: Lifespan | None = None,
        debug: bool = False,
        openapi: bool | dict[str, Any] = False,
    ) -> Starlette:
        """A Starlette app with tenantkit's middleware, routes, handlers and lifespan.

        Args:
            routes: The application's own routes (mounted after tenantkit's).
            middleware: Extra middleware, inside tenantkit's stack.
            lifespan: The application's own lifespan, run inside the kit's.
            openapi: Serve ``GET /openapi.json`` and Swagger UI at ``/api-docs``
                describing every route; a dict passes options to
                :func:`tenantkit.openapi.openapi_routes` (``title``, ``version``...).
        """

        @contextlib.asynccontextmanager
        async def combined(app: Starlette) -> AsyncIterator[None]:
            async with self.lifespan(app):
                if lifespan is None:
                    yield
                else:
                    async with lifespan(app):
                        yield

        app = Starlette(
            debug=debug,
            routes=[*routes, *self.routes, *self._openapi_routes(openapi)],
            middleware=[*self.middleware, *middleware],
            exception_handlers=self.exception_handlers,
            lifespan=combined,
        )
        app.state.tenantkit = self
        return app

    @staticmethod
    def _openapi_routes(openapi: bool | dict[str, Any]) -> list[BaseRoute]:
        if not openapi:
            return []
        from tenantkit.openapi import openapi_routes

        options: dict[str, Any] = {
            "title": "API",
            "version": "1.0",
            **(openapi if isinstance(openapi, dict) else {}),
        }
        return openapi_routes(**options)

    async def emit(self, hook_name: str, /, **kwargs: Any) -> list[Any]:
        """Call the event hook ``tenantkit_<hook_name>``, awaiting async implementations."""
        return await call_event(getattr(self.hook, f"tenantkit_{hook_name}"), **kwargs)
