"""``TENANTKIT_OIDC_*`` settings: parsed from JSON, validated at start, secrets masked."""

from __future__ import annotations

import json

import pytest

from tenantkit import ConfigurationError, Settings
from tenantkit.federation.routes import check_redirect_to, platform_providers

PROVIDER = {
    "name": "google",
    "issuer": "https://accounts.google.com/",
    "client_id": "abc",
    "client_secret": "s3cr3t-value",
}


def test_providers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTKIT_OIDC_PROVIDERS", json.dumps([PROVIDER]))
    monkeypatch.setenv(
        "TENANTKIT_OIDC_REDIRECT_ALLOWLIST", "https://app.example.com, https://admin.example.com"
    )
    settings = Settings.load(env="development")
    [provider] = settings.oidc_providers
    assert provider.issuer == "https://accounts.google.com"  # no trailing slash
    assert provider.scopes == ["openid", "email", "profile"]
    assert settings.oidc_redirect_allowlist == ["https://app.example.com", "https://admin.example.com"]
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings.oidc_providers)
    assert platform_providers(settings)["google"].client_secret == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(platform_providers(settings)["google"])


@pytest.mark.parametrize(
    "providers",
    [
        "not json",
        json.dumps([{**PROVIDER, "name": "Google"}]),
        json.dumps([{**PROVIDER, "name": "a/b"}]),
        json.dumps([{**PROVIDER, "issuer": "ftp://x"}]),
        json.dumps([PROVIDER, PROVIDER]),
        json.dumps([{**PROVIDER, "unknown": 1}]),
        json.dumps([{k: v for k, v in PROVIDER.items() if k != "client_secret"}]),
    ],
)
def test_bad_providers_refuse_to_start(monkeypatch: pytest.MonkeyPatch, providers: str) -> None:
    monkeypatch.setenv("TENANTKIT_OIDC_PROVIDERS", providers)
    with pytest.raises(ConfigurationError) as error:
        Settings.load(env="development")
    assert "s3cr3t-value" not in str(error.value)


def test_openid_scope_is_always_requested() -> None:
    settings = Settings.load(env="development", oidc_providers=[{**PROVIDER, "scopes": ["email"]}])
    assert settings.oidc_providers[0].scopes == ["openid", "email"]


@pytest.mark.parametrize("entry", ["app.example.com", "https://user@app.example.com"])
def test_bad_allowlist_entries_refuse_to_start(entry: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.load(env="development", oidc_redirect_allowlist=entry)


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("/dashboard?tab=1", True),
        ("https://app.example.com/x", True),
        ("https://app.example.com:443/x", False),  # another spelling of the origin is not trusted
        ("https://exact.example.com/cb", True),
        ("https://exact.example.com/cb2", False),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("/\tx", False),
        ("https://evil.example/", False),
        ("mailto:a@b", False),
    ],
)
def test_redirect_to_rules(value: str, allowed: bool) -> None:
    allowlist = ["https://app.example.com", "https://exact.example.com/cb"]
    if allowed:
        assert check_redirect_to(value, allowlist) == value
    else:
        with pytest.raises(Exception) as error:
            check_redirect_to(value, allowlist)
        assert getattr(error.value, "status", None) == 400
