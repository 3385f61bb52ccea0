"""Settings from the environment (prefix ``TENANTKIT_``) or keyword arguments.

``Settings.load()`` validates everything at once and raises one
:class:`~tenantkit.errors.ConfigurationError` that lists every bad value, so a
misconfigured deployment crashes at start with a message worth reading.
Secrets are ``SecretStr``: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from tenantkit.errors import ConfigurationError

__all__ = ["OidcProviderSettings", "RateLimit", "Settings"]

MIN_SECRET_BYTES = 32
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

CommaList = Annotated[list[str], NoDecode]


class RateLimit(pydantic.BaseModel):
    """A parsed limit such as ``"20/minute"``: ``limit`` events per ``period`` seconds."""

    model_config = pydantic.ConfigDict(frozen=True)

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _RATE.match(text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"{text!r} is not a rate like '20/minute' or '5/10second'")
        multiplier = int(match.group(2) or 1)
        return cls(limit=int(match.group(1)), period=multiplier * _PERIODS[match.group(3)])

    def __str__(self) -> str:
        """The rate as :meth:`parse` reads it back: ``20/minute``, or ``5/10second`` for odd periods."""
        for unit, seconds in reversed(_PERIODS.items()):
            if self.period == seconds:
                return f"{self.limit}/{unit}"
        return f"{self.limit}/{self.period}second"


_PROVIDER_NAME = re.compile(r"^[a-z0-9-]{1,40}$")


class OidcProviderSettings(pydantic.BaseModel):
    """One platform OpenID Connect provider (an entry of ``TENANTKIT_OIDC_PROVIDERS``)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: str
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROVIDER_NAME.match(value):
            raise ValueError("provider names are 1-40 characters of [a-z0-9-]")
        return value

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the issuer must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]


class Settings(BaseSettings):
    """Every tenantkit option. Environment variables are the field names upper-cased
    with the ``TENANTKIT_`` prefix (``TENANTKIT_DATABASE_URL``...)."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTKIT_", frozen=True, extra="forbid", validate_default=True
    )

    env: Literal["development", "production", "test"] = "production"
    data_dir: Path = Path(".tenantkit")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    # Database
    database_url: str | None = None
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(10.0, gt=0)
    db_echo: bool = False
    db_pool_pre_ping: bool = False
    #: Prepared statements kept per connection (asyncpg's cache and SQLAlchemy's); 0 turns caching off
    #: (needed behind PgBouncer in transaction mode).
    db_statement_cache_size: int = Field(100, ge=0)
    database_replica_urls: CommaList = Field(default_factory=list)
    database_replica_max_lag_seconds: float = Field(2.0, ge=0)
    database_replica_check_seconds: float = Field(1.0, gt=0, le=60)
    database_read_your_writes_seconds: float = Field(5.0, ge=0, le=3600)

    # Redis / stores
    redis_url: str | None = None
    redis_key_prefix: str = "tk:"
    redis_cluster_nodes: CommaList = Field(default_factory=list)

    # Tokens
    jwt_algorithm: Literal["HS256", "EdDSA", "ES256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    jwt_previous_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    jwt_previous_key_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    jwt_issuer: str = "tenantkit"
    jwt_audience: str = "tenantkit"
    jwt_leeway: int = Field(5, ge=0, le=120)
    access_token_ttl: int = Field(900, ge=30, le=86400)
    refresh_token_ttl: int = Field(604800, ge=60)
    refresh_grace_seconds: int = Field(10, ge=0, le=300)
    session_idle_timeout: int = Field(1209600, ge=60)
    session_absolute_lifetime: int = Field(2592000, ge=60)
    token_cache_size: int = Field(10000, ge=0)
    revocation_fail_closed: bool = True

    # Passwords and lockout
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    bcrypt_workers: int | None = Field(None, ge=1)  # threads hashing passwords; unset = the cores
    bcrypt_queue_limit: int = Field(32, ge=0)  # hash/verify jobs that may wait; more get 503
    password_min_length: int = Field(8, ge=8)
    password_pepper: SecretStr | None = None
    lockout_threshold: int = Field(5, ge=1)
    lockout_seconds: int = Field(900, ge=1)
    password_reset_ttl: int = Field(3600, ge=60)
    invitation_ttl: int = Field(604800, ge=60)

    # Two-factor and secrets at rest
    encryption_key: SecretStr | None = None
    mfa_issuer: str = Field("tenantkit", min_length=1, max_length=64)
    mfa_challenge_ttl: int = Field(300, ge=30, le=3600)
    mfa_max_attempts: int = Field(5, ge=1, le=20)

    # Tenancy
    tenant_resolvers: CommaList = Field(default_factory=lambda: ["header", "token"])
    tenant_header: str = "X-Tenant-ID"
    tenant_base_domain: str | None = None
    tenant_path_prefix: str = "/t/"
    tenant_cache_ttl: int = Field(60, ge=0)

    # HTTP hardening
    rate_limit_auth: Annotated[RateLimit, NoDecode] = RateLimit(limit=20, period=60)
    rate_limit_api: Annotated[RateLimit, NoDecode] = RateLimit(limit=1200, period=60)
    rate_limit_tenant: Annotated[RateLimit, NoDecode] = RateLimit(limit=6000, period=60)
    rate_limit_sync_ms: int = Field(100, ge=0, le=60000)
    rate_limit_local_share: float = Field(0.05, gt=0, le=1)
    trusted_proxies: CommaList = Field(default_factory=list)
    max_body_bytes: int = Field(1048576, ge=1024)
    max_json_depth: int = Field(32, ge=2)
    cors_origins: CommaList = Field(default_factory=list)
    allowed_hosts: CommaList = Field(default_factory=lambda: ["*"])
    csrf_trusted_origins: CommaList = Field(default_factory=list)
    metrics_token: SecretStr | None = None

    # Webhooks, jobs, mail, files
    webhook_allow_hosts: CommaList = Field(default_factory=list)
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(5, ge=1)
    #: Hosts a tenant's SSO issuer may name despite the SSRF guard (a provider on loopback in tests).
    sso_allow_hosts: CommaList = Field(default_factory=list)
    job_max_attempts: int = Field(5, ge=1)
    job_retry_base_seconds: float = Field(1.0, gt=0)
    job_retry_max_seconds: float = Field(300.0, gt=0)
    job_concurrency: int = Field(10, ge=1)
    audit_batch_size: int = Field(200, ge=1)
    audit_flush_ms: int = Field(200, ge=1)
    audit_buffer_max: int = Field(10000, ge=1)
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    file_url_ttl: int = Field(300, ge=10, le=604800)
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "tenantkit@localhost"

    # Federated identity (OpenID Connect sign-in, tenant single sign-on)
    oidc_providers: Annotated[list[OidcProviderSettings], NoDecode] = Field(default_factory=list)
    oidc_redirect_allowlist: CommaList = Field(default_factory=list)
    oidc_flow_ttl: int = Field(600, ge=60, le=3600)
    oidc_http_timeout: float = Field(10.0, gt=0, le=60)
    public_base_url: str | None = None
    email_verification_ttl: int = Field(86400, ge=300)

    # The administration console (tenantkit.console): where it is served; "" switches it off.
    console_path: str = Field("/console", pattern=r"^(?:|(?:/[A-Za-z0-9._~-]+)+)$", max_length=200)

    @field_validator(
        "tenant_resolvers",
        "trusted_proxies",
        "cors_origins",
        "allowed_hosts",
        "csrf_trusted_origins",
        "webhook_allow_hosts",
        "sso_allow_hosts",
        "database_replica_urls",
        "redis_cluster_nodes",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_previous_secrets", "jwt_previous_key_files", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rate_limit_auth", "rate_limit_api", "rate_limit_tenant", mode="before")
    @classmethod
    def _parse_rate(cls, value: Any) -> Any:
        return RateLimit.parse(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must start with postgresql+asyncpg:// or sqlite+aiosqlite://")
        return value

    @field_validator("database_replica_urls")
    @classmethod
    def _check_replica_urls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and any(not url.startswith("postgresql+asyncpg://") for url in value):
            raise ValueError("each replica must start with postgresql+asyncpg://")
        primary = info.data.get("database_url")
        if value and not (primary or "").startswith("postgresql+asyncpg://"):
            raise ValueError("read replicas need a PostgreSQL primary (TENANTKIT_DATABASE_URL)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _check_cluster_nodes(cls, value: list[str]) -> list[str]:
        for node in value:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{node!r}: each node must be host:port")
        return value

    @field_validator("tenant_resolvers")
    @classmethod
    def _check_resolvers(cls, value: list[str]) -> list[str]:
        known = {"header", "subdomain", "path", "token", "plugin"}
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown resolvers {unknown}; choose from {sorted(known)}")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("jwt_algorithm", "HS256") != "HS256":
            return value
        if value is None and info.data.get("env") != "development":
            raise ValueError(
                "required outside development (generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _check_encryption_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("jwt_private_key_file")
    @classmethod
    def _check_key_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        algorithm = info.data.get("jwt_algorithm", "HS256")
        if algorithm != "HS256" and value is None:
            raise ValueError(f"required for {algorithm}")
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _check_previous(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(old.get_secret_value().encode()) < MIN_SECRET_BYTES for old in value):
            raise ValueError(f"each must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _check_bucket(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("s3_endpoint_url") and not value:
            raise ValueError("required when s3_endpoint_url is set")
        return value

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _parse_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else []
            except json.JSONDecodeError:
                raise ValueError("must be a JSON list of {name, issuer, client_id, client_secret}") from None
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_providers(cls, value: list[OidcProviderSettings]) -> list[OidcProviderSettings]:
        names = [provider.name for provider in value]
        if len(names) != len(set(names)):
            raise ValueError("provider names must be unique")
        return value

    @field_validator("oidc_redirect_allowlist", mode="before")
    @classmethod
    def _split_federation_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("oidc_redirect_allowlist")
    @classmethod
    def _check_allowlist(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.startswith(("https://", "http://")) or "@" in entry:
                raise ValueError(f"{entry!r}: each entry must be an absolute http(s) URL or origin")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/") if value else value

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tenantkit.sqlite3').resolve()}"

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment (overridden by keyword arguments) and validate it all.

        Raises:
            ConfigurationError: listing every invalid value at once.
        """
        try:
            return cls(**overrides)
        except SettingsError as exc:
            raise ConfigurationError(f"invalid tenantkit settings: {exc}") from None
        except pydantic.ValidationError as exc:
            lines = []
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "settings"
                message = error["msg"].removeprefix("Value error, ")
                lines.append(f"  - {field}: {message}")
            raise ConfigurationError("invalid tenantkit settings:\n" + "\n".join(lines)) from None
