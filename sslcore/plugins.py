"""Build the plugin manager and the component registries, lazily, in a function.

Order: hook specs, the built-in plugin, then third-party plugins from the ``sslcore``
entry-point group, then ``check_pending()``. A plugin that fails to import is recorded (name,
version, error) and skipped so the others still load.

Environment switches:
    SSLCORE_DISABLE_PLUGIN_AUTOLOAD=1   load no entry points (built-ins only)
    SSLCORE_LOAD_PLUGINS=a,b            load only these entry points
    SSLCORE_DISABLED_PLUGINS=a,b        skip these entry points
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from sslcore import hookspecs
from sslcore.errors import PluginLoadError
from sslcore.registry import Registry

ENTRY_POINT_GROUP = "sslcore"
KINDS = ("datasets", "augmentations", "pretext_tasks", "backbones", "heads", "baselines",
         "metrics", "verticals")


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    error: str | None = None


@dataclass
class Registries:
    """All component registries plus what was loaded and what failed."""

    plugins: list[PluginInfo]
    by_kind: dict[str, Registry[Any]] = field(default_factory=dict)

    def __getattr__(self, kind: str) -> Registry[Any]:
        try:
            return self.__dict__["by_kind"][kind]
        except KeyError:
            raise AttributeError(kind) from None

    def plugin_versions(self) -> dict[str, str]:
        return {p.name: p.version for p in self.plugins if p.error is None}

    def components_of(self, module_prefix: str) -> dict[str, list[str]]:
        """Component names by kind registered from modules under ``module_prefix``."""
        out: dict[str, list[str]] = {}
        for kind, reg in self.by_kind.items():
            names = [e.name for e in reg if e.module.split(".")[0] == module_prefix.split(".")[0]]
            if names:
                out[kind] = names
        return out


def _csv_env(name: str) -> set[str] | None:
    raw = os.environ.get(name, "").strip()
    return {p.strip() for p in raw.split(",") if p.strip()} if raw else None


def get_plugin_manager(extra_plugins: Sequence[object] = ()) -> tuple[pluggy.PluginManager,
                                                                     list[PluginInfo]]:
    """Return a fresh plugin manager with specs, built-ins and entry-point plugins loaded.

    ``extra_plugins`` (modules or objects with ``@hookimpl`` methods) are registered after the
    built-ins, for plugins defined in the caller's own code rather than installed.
    """
    import sslcore
    from sslcore.builtins import plugin as builtin_plugin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_plugin, name="sslcore.builtins")
    infos = [PluginInfo("sslcore", sslcore.__version__, builtin_plugin.__name__)]
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        _register(pm, plugin, name)
        infos.append(PluginInfo(name, "local", getattr(plugin, "__module__", name)))

    if os.environ.get("SSLCORE_DISABLE_PLUGIN_AUTOLOAD", "").lower() not in ("1", "true", "yes"):
        only, disabled = _csv_env("SSLCORE_LOAD_PLUGINS"), _csv_env("SSLCORE_DISABLED_PLUGINS")
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (only is not None and ep.name not in only) or (disabled and ep.name in disabled):
                continue
            version = ep.dist.version if ep.dist else "unknown"
            try:
                module = ep.load()
                pm.register(module, name=ep.name)
                infos.append(PluginInfo(ep.name, version, ep.value))
            except Exception as exc:  # a broken plugin must not take the others down
                msg = f"{type(exc).__name__}: {exc}"
                infos.append(PluginInfo(ep.name, version, ep.value, error=msg))
                warnings.warn(f"sslcore plugin {ep.name!r} ({version}) failed to load and is "
                              f"skipped: {msg}", stacklevel=2)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or str(exc.plugin)
        raise PluginLoadError(f"plugin {name!r} implements a hook sslcore does not have: "
                              f"{_one_line(exc)}; the hooks are listed in docs/hooks.md") from None
    return pm, infos


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register one plugin; a hook whose arguments differ from the spec is a named error."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {name!r} does not match sslcore's hook specs: "
                              f"{_one_line(exc)}; the hooks and their arguments are listed in "
                              "docs/hooks.md") from None


def _one_line(exc: Exception) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def load_registries(extra_plugins: Sequence[object] = ()) -> Registries:
    """Call every registration hook and return the filled registries.

    Raises:
        DuplicateComponentError: two plugins registered the same name of one kind.
        PluginLoadError: a plugin's hook raised while registering.
    """
    pm, infos = get_plugin_manager(extra_plugins)
    loaded = [i.name for i in infos if i.error is None]
    regs = Registries(plugins=infos)
    for kind in KINDS:
        registry: Registry[Any] = Registry(kind, installed_plugins=lambda: loaded)
        hook = getattr(pm.hook, f"sslcore_register_{kind}")
        try:
            hook(registry=registry)
        except (TypeError, ValueError, ImportError, AttributeError) as exc:
            raise PluginLoadError(f"a plugin failed while registering {kind}: {exc}") from exc
        regs.by_kind[kind] = registry
    return regs

