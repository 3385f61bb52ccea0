"""``TenantKit``: the composition root an application builds once."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import pluggy
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from tenantkit.audit import AuditLog
from tenantkit.auth.accounts import Accounts
from tenantkit.auth.apikeys import ApiKeys
from tenantkit.auth.identity import Authenticator
from tenantkit.auth.keys import KeySet
from tenantkit.auth.lockout import Lockout
from tenantkit.auth.mfa import TwoFactor
from tenantkit.auth.passwords import PasswordHasher
from tenantkit.auth.revocation import RevocationList
from tenantkit.auth.sessions import Sessions
from tenantkit.auth.tokens import AccessTokens
from tenantkit.background import Background
from tenantkit.db.engine import Database
from tenantkit.db.rls import check_rls_enforced
from tenantkit.events import Events
from tenantkit.http import problem_exception_handlers
from tenantkit.mail import Mail, Mailer, Outbox, mailer_from_settings
from tenantkit.observability.logging import configure_logging
from tenantkit.observability.metrics import Metrics
from tenantkit.pipeline import edge_middleware, identity_middleware
from tenantkit.plugins.manager import create_plugin_manager
from tenantkit.rbac.access import Access
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.rbac.roles import RoleBook
from tenantkit.routing import compile_router, public_paths
from tenantkit.sealing import Sealer
from tenantkit.security import RateLimiter
from tenantkit.settings import Settings
from tenantkit.stores.base import Store, create_store
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.resolvers import build_resolvers
from tenantkit.tenancy.service import TenancyService

__all__ = ["TenantKit"]

logger = logging.getLogger("tenantkit")

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


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
        # Platform: plugins, metrics, storage engines, background tasks, events.
        self.plugins: pluggy.PluginManager = create_plugin_manager(plugins, autoload=autoload_plugins)
        self.hook = self.plugins.hook
        self.metrics = Metrics()
        self.database = Database(s.resolved_database_url, settings=s)
        self.store: Store = store if store is not None else create_store(s)
        self.database.share_writes(self.store)  # read replicas: read-your-writes across processes
        self.metrics.watch_pool(lambda: self.database.engine.pool)
        self.background = Background()
        self.audit_log = AuditLog(
            self.database,
            batch_size=s.audit_batch_size,
            flush_ms=s.audit_flush_ms,
            max_buffer=s.audit_buffer_max,
        )
        self.events = Events(self.hook, self.audit_log, self.background.spawn)
        self.rate_limiter = RateLimiter(
            self.store,
            metrics=self.metrics,
            sync_interval=s.rate_limit_sync_ms / 1000,
            local_share=s.rate_limit_local_share,
        )
        self.mailer: Mailer = mailer if mailer is not None else mailer_from_settings(s)
        self.migration_locations = [*migration_locations]
        for extra in self.hook.tenantkit_migration_locations():
            self.migration_locations.extend(extra or ())

        # Tenancy and RBAC.
        self.permissions = PermissionRegistry()
        self.permissions.register_many(permissions)
        for registered in self.hook.tenantkit_register_permissions():
            self.permissions.register_many(registered or ())
        self.roles = RoleBook(self.permissions, self.database, self.store, user_permissions=user_permissions)
        self.directory = TenantDirectory(self.database, self.store, ttl=s.tenant_cache_ttl or 60)

        # Credentials.
        pepper = s.password_pepper.get_secret_value().encode() if s.password_pepper else None
        self.passwords = PasswordHasher(
            s.bcrypt_rounds, pepper=pepper, workers=s.bcrypt_workers, queue_limit=s.bcrypt_queue_limit
        )
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
            self.store,
            self.database,
            mark_ttl=s.access_token_ttl + s.jwt_leeway + 60,
            fail_closed=s.revocation_fail_closed,
        )
        self.lockout = Lockout(self.store, threshold=s.lockout_threshold, seconds=s.lockout_seconds)
        self.api_keys = ApiKeys(
            database=self.database,
            store=self.store,
            digest_key=self.keys.derive("api-keys"),
            registry=self.permissions,
            events=self.events,
        )
        self.authenticator = Authenticator(self.tokens, self.revocations, self.api_keys)
        sealing = (
            s.encryption_key.get_secret_value().encode() if s.encryption_key else self.keys.derive("sealing")
        )
        self.mfa = TwoFactor(
            database=self.database,
            store=self.store,
            sealer=Sealer.from_material(sealing),
            code_key=self.keys.derive("recovery-codes"),
            lockout=self.lockout,
            events=self.events,
            issuer=s.mfa_issuer,
            challenge_ttl=s.mfa_challenge_ttl,
            max_attempts=s.mfa_max_attempts,
        )
        self.access = Access(self.directory, self.roles, self.hook, enrolled=self.mfa.enrolled)

        # Jobs first: mail goes through them.
        from tenantkit.jobs import SEND_MAIL, JobRunner

        self.jobs = JobRunner.from_settings(
            s,
            database=self.database,
            metrics=self.metrics,
            events=self.events,
            tenants=self.directory,
            mailer=self.mailer,
        )
        self.outbox = Outbox(self.mailer, lambda data: self.jobs.enqueue(SEND_MAIL, data))

        # Features.
        self.sessions = Sessions(
            s,
            database=self.database,
            hasher=self.passwords,
            tokens=self.tokens,
            lockout=self.lockout,
            revocations=self.revocations,
            events=self.events,
            metrics=self.metrics,
            mfa=self.mfa,
        )
        self.tenancy = TenancyService(
            database=self.database,
            directory=self.directory,
            roles=self.roles,
            events=self.events,
            sessions=self.sessions,
            send_mail=self.outbox,
            invitation_ttl=s.invitation_ttl,
            reserved_slugs=[s.tenant_path_prefix.strip("/").split("/")[0]],
        )
        self.accounts = Accounts(
            s,
            database=self.database,
            hasher=self.passwords,
            sessions=self.sessions,
            tenancy=self.tenancy,
            rate_limiter=self.rate_limiter,
            events=self.events,
            send_mail=self.outbox,
            store=self.store,
        )

        # Per-tenant single sign-on: configuration, domain claims, password sign-in enforcement.
        from tenantkit.federation.sso import TenantSsoService

        self.sso = TenantSsoService(
            database=self.database,
            directory=self.directory,
            sealer=Sealer.from_material(b"tenant-sso:" + sealing),
            events=self.events,
            allow_hosts=s.sso_allow_hosts,
            allow_http=s.env == "development",
        )
        self.sessions.password_policy = self.sso.password_login_allowed

        # Federated identity: OpenID Connect sign-in, tenants' single sign-on, email verification.
        from tenantkit.federation.flow import FlowStore
        from tenantkit.federation.oidc import OidcClient
        from tenantkit.federation.signin import FederatedSignIn
        from tenantkit.federation.verification import EmailVerification

        self.oidc_client = OidcClient(timeout=s.oidc_http_timeout, allow_hosts=s.sso_allow_hosts)
        self.oidc_flows = FlowStore(self.store, self.keys.derive("oidc-flows"), ttl=s.oidc_flow_ttl)
        self.federated_signin = FederatedSignIn(
            database=self.database,
            sessions=self.sessions,
            tenancy=self.tenancy,
            directory=self.directory,
            events=self.events,
            send_mail=self.outbox,
        )
        self.email_verification = EmailVerification(
            database=self.database,
            store=self.store,
            key=self.keys.derive("email-verification"),
            send_mail=self.outbox,
            accounts=self.accounts,
            events=self.events,
            ttl=s.email_verification_ttl,
        )
        from tenantkit.federation.base import TenantProviders

        #: Tenants' single sign-on providers (``/auth/sso/*``); ``None`` answers 404 there.
        self.tenant_providers: TenantProviders | None = self.sso

        from tenantkit.files import FileService, create_storage
        from tenantkit.webhooks import WebhookService

        self.storage = create_storage(s, local_secret=self.derive_key("files"))
        self.files = FileService(
            self.storage, self.database, url_ttl=s.file_url_ttl, on_uploaded=self._file_uploaded
        )
        self.webhooks = WebhookService.from_settings(self.database, s, jobs=self.jobs, events=self.events)

        from tenantkit.scim.tokens import ScimTokens

        self.scim_tokens = ScimTokens(
            database=self.database,
            store=self.store,
            digest_key=self.keys.derive("scim-tokens"),
            events=self.events,
        )
        self.hook.tenantkit_register_tasks(kit=self)
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
        """The edge and identity passes, outermost first, for ``Starlette(middleware=...)``."""
        settings = self.settings
        resolvers = build_resolvers(
            settings.tenant_resolvers,
            header=settings.tenant_header,
            base_domain=settings.tenant_base_domain,
            path_prefix=settings.tenant_path_prefix,
            hook=self.hook,
        )
        # Two pure-ASGI passes (tenantkit.pipeline): the edge, then identity.
        return [
            edge_middleware(settings, metrics=self.metrics, body_limit_exempt=self._self_limited_paths()),
            # On public routes (sign-in, refresh, health, /metrics with its own token...)
            # a stale or foreign Authorization header is ignored, not refused.
            identity_middleware(
                settings,
                authenticator=self.authenticator,
                access=self.access,
                optional_paths=public_paths(self.routes),
                limiter=self.rate_limiter,
                directory=self.directory,
                resolvers=resolvers,
                optional_prefixes=("/scim/v2/",),  # SCIM routes check their own (SCIM) bearer token
            ),
        ]

    @property
    def routes(self) -> list[BaseRoute]:
        """tenantkit's routes: health, metrics, auth, administration, audit, jobs, local files..."""
        from tenantkit.kit.routes import kit_routes

        return kit_routes(self)

    def _self_limited_paths(self) -> list[str]:
        from tenantkit.files import LocalStorage

        # Local uploads check their signed, declared size themselves.
        return [self.storage.base_url_path] if isinstance(self.storage, LocalStorage) else []

    @property
    def exception_handlers(self) -> dict[Any, Any]:
        """Handlers rendering every error as problem+json."""
        return problem_exception_handlers()

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
        await check_rls_enforced(self.database, self.settings.env)
        await self.revocations.start()
        await self.directory.start()
        await self.roles.start()
        await self.mfa.start()
        await self.api_keys.start()
        await self.scim_tokens.start()
        await self.accounts.start()
        await self.audit_log.start()
        await self.jobs.startup()
        ensure_bucket = getattr(self.storage, "ensure_bucket", None)
        if ensure_bucket is not None:
            try:
                await ensure_bucket()
            except Exception as exc:
                logger.warning("object storage not ready: %s", type(exc).__name__)
        self._started = True

    async def shutdown(self) -> None:
        """Release resources; ``lifespan`` calls it."""
        if not self._started:
            return
        self._started = False
        await self.background.drain()
        await self.jobs.shutdown()
        await self.audit_log.stop()
        await self.api_keys.stop()
        await self.scim_tokens.stop()
        await self.mfa.stop()
        await self.accounts.stop()
        await self.roles.stop()
        await self.directory.stop()
        await self.revocations.stop()
        self.passwords.close()
        await self.rate_limiter.close()
        close_storage = getattr(self.storage, "close", None)
        if close_storage is not None:
            await close_storage()
        await self.store.close()
        await self.database.dispose()

    def check_routes(self, routes: Iterable[BaseRoute]) -> None:
        """Refuse to start when a route requires a permission no registry knows."""
        from tenantkit.routing import check_routes

        check_routes(routes, self.permissions)

    # ------------------------------------------------------------------ #
    # Services used across modules
    # ------------------------------------------------------------------ #

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for ``label`` (see :meth:`KeySet.derive`)."""
        return self.keys.derive(label)

    async def _file_uploaded(self, file: dict[str, Any]) -> None:
        await self.emit("on_file_uploaded", file=file)
        self.events.audit(
            "file.uploaded", tenant_id=uuid.UUID(str(file["tenant_id"])), target=str(file["id"])
        )

    async def send_mail(self, mail: Mail) -> None:
        """Send ``mail`` through the outbox (queued as a job when the mailer is SMTP)."""
        await self.outbox(mail)

    def audit(self, action: str, *, tenant_id: uuid.UUID | None = None, **fields: Any) -> None:
        """Record an audit row (see :meth:`Events.audit`)."""
        self.events.audit(action, tenant_id=tenant_id, **fields)

    @contextlib.contextmanager
    def unscoped(self, reason: str, *, actor_id: uuid.UUID | None = None) -> Any:
        """Cross tenants explicitly: logged and audited."""
        from tenantkit.db.scoping import unscoped

        self.events.audit("tenancy.unscoped", tenant_id=None, actor_id=actor_id, data={"reason": reason})
        with unscoped(reason):
            yield

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
        compile_router(app.router)  # Starlette's matching, tried only where a route can match
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
        return await self.events.emit(hook_name, **kwargs)
