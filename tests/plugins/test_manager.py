from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from tenantkit import Settings, TenantKit, hookimpl
from tenantkit.plugins import create_plugin_manager
from tenantkit.plugins.manager import call_event


def test_entry_point_plugin_is_installed_and_loads() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group="tenantkit")}
    assert "sample" in names, "pip install ./tests/plugin_dist (the README test command does)"
    manager = create_plugin_manager(autoload=True)
    assert manager.get_plugin("sample") is not None
    results = manager.hook.tenantkit_register_permissions()
    assert [("sample.read", "Read samples (from the sample plugin)")] in results


def test_entry_point_plugin_hook_runs_when_a_kit_is_built(tmp_path: Path) -> None:
    import tenantkit_sample_plugin

    before = len(tenantkit_sample_plugin.configured)
    settings = Settings.load(env="test", jwt_secret="k" * 40, data_dir=tmp_path)
    kit = TenantKit(settings, autoload_plugins=True)
    assert tenantkit_sample_plugin.configured[before:] == [kit]


def test_autoload_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert create_plugin_manager().get_plugin("sample") is None


def test_plugins_passed_in_code_are_registered() -> None:
    class Plugin:
        @hookimpl
        def tenantkit_register_permissions(self) -> list[tuple[str, str]]:
            return [("code.read", "from code")]

    manager = create_plugin_manager([Plugin()], autoload=False)
    assert manager.hook.tenantkit_register_permissions() == [[("code.read", "from code")]]


def test_unknown_hook_names_are_rejected() -> None:
    class Typo:
        @hookimpl
        def tenantkit_on_loggin(self) -> None: ...

    with pytest.raises(Exception, match="unknown hook"):
        create_plugin_manager([Typo()], autoload=False)


async def test_call_event_awaits_async_hooks_and_survives_failures() -> None:
    seen: list[str] = []

    class Async:
        @hookimpl
        async def tenantkit_on_logout(self, user_id: str, session_ids: list[str], reason: str) -> str:
            seen.append(f"async:{user_id}:{reason}")
            return "async"

    class Broken:
        @hookimpl
        async def tenantkit_on_logout(self, user_id: str, session_ids: list[str], reason: str) -> None:
            raise RuntimeError("plugin bug")

    class Sync:
        @hookimpl
        def tenantkit_on_logout(self, user_id: str, session_ids: list[str], reason: str) -> str:
            seen.append("sync")
            return "sync"

    manager = create_plugin_manager([Async(), Broken(), Sync()], autoload=False)
    results = await call_event(
        manager.hook.tenantkit_on_logout, user_id="u1", session_ids=["s"], reason="logout"
    )
    assert sorted(results) == ["async", "sync"]
    assert "async:u1:logout" in seen


@pytest.mark.parametrize(
    "hook", ["tenantkit_access_token_claims", "tenantkit_resolve_tenant", "tenantkit_authorize"]
)
def test_async_implementation_of_a_synchronous_hook_is_refused(hook: str) -> None:
    import pluggy

    signatures = {
        "tenantkit_access_token_claims": "user_id, tenant_id, role",
        "tenantkit_resolve_tenant": "request",
        "tenantkit_authorize": "principal, permission, resource",
    }
    namespace: dict[str, object] = {"hookimpl": hookimpl}
    exec(  # a plugin class with one async implementation of ``hook``
        f"class Plugin:\n    @hookimpl\n    async def {hook}(self, {signatures[hook]}):\n        return None\n",
        namespace,
    )
    plugin = namespace["Plugin"]()  # type: ignore[operator]
    with pytest.raises(pluggy.PluginValidationError, match="synchronous"):
        create_plugin_manager([plugin], autoload=False)
    manager = create_plugin_manager(autoload=False)
    with pytest.raises(pluggy.PluginValidationError, match=hook):
        manager.register(plugin)
    assert not manager.is_registered(plugin)


def test_async_event_hooks_are_accepted_and_awaited() -> None:
    import asyncio

    seen: list[str] = []

    class Plugin:
        @hookimpl
        async def tenantkit_on_logout(self, user_id: str, session_ids: list[str], reason: str) -> None:
            seen.append(reason)

    manager = create_plugin_manager([Plugin()], autoload=False)
    asyncio.run(call_event(manager.hook.tenantkit_on_logout, user_id="u", session_ids=[], reason="logout"))
    assert seen == ["logout"]
