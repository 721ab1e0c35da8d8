"""Registry[T]: named components of one kind that refuse duplicates and explain unknown names.

Unlike registries that warn and overwrite, a duplicate name is an error naming both modules, and
an unknown name lists close matches and the installed plugins, so a typo in a config never
silently picks something else.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from sslcore.errors import DuplicateComponentError, UnknownComponentError

T = TypeVar("T")


class NoParams(BaseModel):
    """Params model for components that take no parameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: a factory, its params model and who registered it."""

    name: str
    factory: Callable[..., T]
    params: type[BaseModel]
    module: str
    description: str = ""

    def build(self, params: dict[str, Any] | BaseModel | None = None, **context: Any) -> T:
        """Validate ``params`` with the params model and call the factory."""
        model = params if isinstance(params, BaseModel) else self.params(**(params or {}))
        return self.factory(model, **context)


@dataclass
class Registry(Generic[T]):
    """Components of one kind (``datasets``, ``backbones``, ...) keyed by name."""

    kind: str
    installed_plugins: Callable[[], list[str]] = field(default=lambda: [])
    _entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(
        self,
        name: str,
        factory: Callable[..., T],
        params: type[BaseModel] = NoParams,
        description: str = "",
        *,
        module: str | None = None,
    ) -> None:
        """Register ``factory(params_model, **context)`` under ``name``.

        Raises:
            DuplicateComponentError: ``name`` is already registered (both modules are named).
            TypeError: the entry is malformed (bad name, factory not callable, params not a
                pydantic model that forbids extra keys).
        """
        module = module or sys._getframe(1).f_globals.get("__name__", "?")
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{module}: {self.kind} name {name!r} must be a Python identifier")
        if not callable(factory):
            raise TypeError(f"{module}: {self.kind} {name!r} factory is not callable")
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"{module}: {self.kind} {name!r} params must be a pydantic model")
        if params.model_config.get("extra") != "forbid":
            raise TypeError(
                f"{module}: {self.kind} {name!r} params model {params.__name__} must set "
                "model_config = ConfigDict(extra='forbid') so config typos fail loudly"
            )
        if name in self._entries:
            other = self._entries[name].module
            raise DuplicateComponentError(
                f"{self.kind} {name!r} is registered twice: by {other} and by {module}. "
                f"Rename one, or disable a plugin with SSLCORE_DISABLED_PLUGINS."
            )
        self._entries[name] = Entry(name, factory, params, module, description)

    def get(self, name: str) -> Entry[T]:
        """Return the entry for ``name``.

        Raises:
            UnknownComponentError: with close matches and the installed plugins.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            plugins = ", ".join(self.installed_plugins()) or "none"
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}.{hint} Registered: "
                f"{', '.join(self.names()) or 'none'}. Installed plugins: {plugins}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
