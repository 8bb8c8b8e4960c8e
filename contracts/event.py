"""The base classes of every event and the wire type naming scheme.

An event model is a frozen pydantic model with a dotted type name and an integer schema
version; the name on the wire joins them (``genstream.job.completed.v1``). A model's
version changes whenever a stored payload of the old version would no longer validate
against it, and the registry then needs an upcaster from the old version.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from contracts.fields import Id

__all__ = ["Event", "JobEvent", "join_wire_type", "split_wire_type"]

_NAME = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+"
_NAME_PATTERN = re.compile(_NAME)
_WIRE_PATTERN = re.compile(rf"^(?P<name>{_NAME})\.v(?P<version>[1-9][0-9]{{0,5}})$")


def join_wire_type(name: str, version: int) -> str:
    """``("genstream.job.completed", 1)`` → ``"genstream.job.completed.v1"``."""
    return f"{name}.v{version}"


def split_wire_type(wire_type: str) -> tuple[str, int] | None:
    """The inverse of ``join_wire_type``; ``None`` when the string is not a wire type."""
    match = _WIRE_PATTERN.fullmatch(wire_type)
    if match is None:
        return None
    return match["name"], int(match["version"])


class Event(BaseModel):
    """Base of every event and command carried in an ``Envelope``.

    The user an event concerns is always the envelope's ``user_id`` and never a data
    field, so the partition key and the ownership check read one place.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    ADDED: ClassVar[frozenset[str]] = frozenset()
    """Optional fields added to this version after records of it were stored: left out while
    unset, so that those records, decoded, encode to the very bytes they were (and readers of
    the version before see nothing new). A field that changes the meaning needs a version."""

    @model_serializer(mode="wrap")
    def _without_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.ADDED and isinstance(data, dict):
            for name in self.ADDED:
                if data.get(name, 0) is None:
                    del data[name]
        return data

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "TYPE" not in cls.__dict__:
            return  # an abstract family base such as JobEvent
        if not _NAME_PATTERN.fullmatch(cls.TYPE):
            raise TypeError(f"{cls.__name__}.TYPE {cls.TYPE!r} is not a dotted lowercase name")
        version = cls.__dict__.get("VERSION")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise TypeError(f"{cls.__name__} must set VERSION to an int >= 1")

    @classmethod
    def wire_type(cls) -> str:
        return join_wire_type(cls.TYPE, cls.VERSION)

    def default_subject(self, user_id: str) -> str:
        """The envelope subject when the producer does not choose one: the user."""
        return user_id


class JobEvent(Event):
    """Base of events about one job; their envelope subject is the job id."""

    job_id: Id

    def default_subject(self, user_id: str) -> str:
        return self.job_id
