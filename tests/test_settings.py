from __future__ import annotations

import pytest

from tenantkit import ConfigurationError, Settings
from tenantkit.settings import RateLimit

STRONG = "s" * 40


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTKIT_JWT_SECRET", STRONG)
    monkeypatch.setenv("TENANTKIT_ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("TENANTKIT_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("TENANTKIT_RATE_LIMIT_AUTH", "5/second")
    settings = Settings.load()
    assert settings.access_token_ttl == 600
    assert settings.trusted_proxies == ["10.0.0.1", "10.0.0.0/8"]
    assert settings.rate_limit_auth == RateLimit(limit=5, period=1)


def test_keyword_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTKIT_JWT_SECRET", STRONG)
    monkeypatch.setenv("TENANTKIT_BCRYPT_ROUNDS", "10")
    assert Settings.load(bcrypt_rounds=11).bcrypt_rounds == 11


def test_every_bad_value_is_listed_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(
            jwt_secret="short",
            bcrypt_rounds=2,
            database_url="mysql://x",
            rate_limit_api="lots",
            tenant_resolvers="header,carrier-pigeon",
        )
    message = str(caught.value)
    for field in ("jwt_secret", "bcrypt_rounds", "database_url", "rate_limit_api", "tenant_resolvers"):
        assert field in message
    assert "short" not in message  # the secret value itself is never echoed


def test_missing_secret_refuses_to_start_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENANTKIT_JWT_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="jwt_secret"):
        Settings.load(env="production")
    assert Settings.load(env="development").jwt_secret is None


def test_weak_secret_refuses_to_start_even_in_development() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        Settings.load(env="development", jwt_secret="x" * 31)


def test_secrets_never_appear_in_repr() -> None:
    settings = Settings.load(jwt_secret=STRONG, smtp_password="hunter2-smtp", s3_secret_key="s3-secret")
    text = repr(settings) + str(settings)
    assert STRONG not in text
    assert "hunter2-smtp" not in text
    assert "s3-secret" not in text


def test_settings_are_frozen() -> None:
    settings = Settings.load(jwt_secret=STRONG)
    with pytest.raises(Exception):
        settings.env = "development"  # type: ignore[misc]


def test_asymmetric_algorithm_needs_a_key_file() -> None:
    with pytest.raises(ConfigurationError, match="jwt_private_key_file"):
        Settings.load(jwt_algorithm="EdDSA")


def test_embedded_default_database_is_sqlite_in_data_dir(tmp_path: object) -> None:
    settings = Settings.load(jwt_secret=STRONG, data_dir=str(tmp_path))
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert str(tmp_path) in settings.resolved_database_url


@pytest.mark.parametrize("text", ["0/minute", "x/minute", "10/fortnight", ""])
def test_rate_limit_parsing_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        RateLimit.parse(text)


def test_redis_cluster_nodes_are_host_port_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTKIT_JWT_SECRET", STRONG)
    monkeypatch.setenv("TENANTKIT_REDIS_CLUSTER_NODES", "10.0.1.1:6379, redis-2.internal:7000")
    assert Settings.load().redis_cluster_nodes == ["10.0.1.1:6379", "redis-2.internal:7000"]
    for bad in ("10.0.1.1", "host:port", ":6379", "host:70000"):
        with pytest.raises(ConfigurationError, match="redis_cluster_nodes"):
            Settings.load(redis_cluster_nodes=bad)


def test_redis_cluster_nodes_select_the_cluster_store_and_broker() -> None:
    from redis.asyncio.cluster import RedisCluster

    from tenantkit.jobs import create_broker
    from tenantkit.stores import create_store

    settings = Settings.load(
        jwt_secret=STRONG, redis_url="redis://127.0.0.1:1/0", redis_cluster_nodes="127.0.0.1:1,127.0.0.1:2"
    )
    store = create_store(settings)  # lazy: nothing connects here
    assert isinstance(getattr(store, "_client"), RedisCluster)  # noqa: B009 - the client is private
    assert type(create_broker(settings)).__name__ == "RecoveringStreamClusterBroker"
