"""Which model reads which wire type, and how older stored versions are brought forward.

A registry holds the current model of each event type. A payload stored under an older
version is passed through upcasters, one version step at a time, until it has the shape
of the current model; a type or version with no such path is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from contracts.credits import CREDIT_EVENT_TYPES
from contracts.errors import UnknownEventType, UnsupportedVersionError
from contracts.event import Event, split_wire_type
from contracts.jobs import JOB_EVENT_TYPES
from contracts.plans import PLAN_EVENT_TYPES

__all__ = ["EVENT_TYPES", "REGISTRY", "Registry", "Upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the ``data`` of version ``n`` into the ``data`` of version ``n + 1``."""


class Registry:
    """Current event models by type name, plus upcasters keyed by ``(TYPE, from_version)``."""

    def __init__(
        self,
        *,
        models: Iterable[type[Event]],
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        by_name: dict[str, type[Event]] = {}
        for model in models:
            if model.TYPE in by_name:
                raise ValueError(f"two models for event type {model.TYPE!r}")
            by_name[model.TYPE] = model
        steps = dict(upcasters or {})
        for name, version in steps:
            current = by_name.get(name)
            if current is None:
                raise ValueError(f"upcaster for unregistered event type {name!r}")
            if not 1 <= version < current.VERSION:
                raise ValueError(
                    f"upcaster for {name!r} v{version} but the current version is "
                    f"v{current.VERSION}"
                )
        self._by_name: Mapping[str, type[Event]] = MappingProxyType(by_name)
        self._upcasters: Mapping[tuple[str, int], Upcaster] = MappingProxyType(steps)
        self._models: Mapping[str, type[Event]] = MappingProxyType(
            {model.wire_type(): model for model in by_name.values()}
        )

    @property
    def models(self) -> Mapping[str, type[Event]]:
        """Current wire type → model, e.g. ``genstream.job.completed.v1`` → ``JobCompleted``."""
        return self._models

    def __contains__(self, wire_type: object) -> bool:
        return wire_type in self._models

    def model_for(self, wire_type: str) -> type[Event]:
        """The model that reads ``wire_type``: the current model of its event type.

        Raises ``UnknownEventType`` for a type that is not registered, and
        ``UnsupportedVersionError`` for a version newer than the current one or an older
        one with no upcaster path.
        """
        name, version = self._split(wire_type)
        model = self._by_name[name]
        if version > model.VERSION:
            raise UnsupportedVersionError(
                wire_type, f"{wire_type!r} is newer than this reader's v{model.VERSION}"
            )
        for step in range(version, model.VERSION):
            if (name, step) not in self._upcasters:
                raise UnsupportedVersionError(
                    wire_type, f"no upcaster from {name!r} v{step} to v{step + 1}"
                )
        return model

    def upcast(self, type_name: str, version: int, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Bring the ``data`` of ``type_name`` at ``version`` to the current version."""
        model = self.model_for(f"{type_name}.v{version}")
        data = dict(payload)
        for step in range(version, model.VERSION):
            data = self._upcasters[type_name, step](data)
        return data

    def _split(self, wire_type: str) -> tuple[str, int]:
        parts = split_wire_type(wire_type)
        if parts is None or parts[0] not in self._by_name:
            raise UnknownEventType(wire_type)
        return parts


EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    *JOB_EVENT_TYPES,
    *CREDIT_EVENT_TYPES,
    *PLAN_EVENT_TYPES,
)
"""Every event model of the system, in its current version."""

REGISTRY: Final = Registry(models=EVENT_TYPES)
"""The registry every service reads and writes with."""
