"""`@record`: an immutable value — a slotted dataclass, frozen for the type checker.

It replaces `@dataclass(frozen=True, slots=True)`, which enforces immutability at run time
at a price paid on every value made: a frozen dataclass's `__init__` sets each field through
`object.__setattr__`, past its own refusing `__setattr__`. Making a 24-field `Position` took
1.69 µs frozen against 0.26 µs unfrozen, and `dataclasses.replace` of one field 3.9 µs
against 2.5 µs. A replay makes values at every step, and this was ≈ 8 % of the year's
backtest (docs/BENCHMARKS.md, "Tenth pass").

Immutability is kept where the project's other type contracts are kept (`Mapping`, `tuple`,
`Final`): the type checker rejects any assignment to a record's field (PEP 681's
`frozen_default`), and `make test` runs mypy strict over the whole tree. At run time a record
compares and hashes by value exactly like the frozen dataclass (the same generated `__eq__`
and `__hash__`), has slots and no `__dict__`, and `dataclasses.replace` and `fields` work on
it. A record that must compute a field once (`field(init=False)`) sets it in
`__post_init__` with `object.__setattr__`, as before.

`replace` here is `dataclasses.replace` for the type checker (which checks the changes against
the fields) and, at run time, a record's own generated `__replace__`: the fields in `__init__`
read by straight-line code instead of a loop over `fields()`, 0.65 µs against 2.43 µs for a
`Position`; a field outside `__init__` is made again by `__init__`, as `dataclasses.replace`
does. Other dataclasses go to `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import Field, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_V = TypeVar("_V")


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: type[_T]) -> type[_T]:
    """`cls` as a slotted dataclass compared and hashed by its fields, read-only when typed."""
    return _with_replacer(dataclass(slots=True, unsafe_hash=True)(cls))


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def open_record(cls: type[_T]) -> type[_T]:
    """`record` with a `__dict__`, for a value whose derived figures are computed once on
    first read (`once`), which slots would leave nowhere to keep."""
    return _with_replacer(dataclass(unsafe_hash=True)(cls))


def _with_replacer(made: type[_T]) -> type[_T]:
    fields = dataclasses.fields(made)  # type: ignore[arg-type]
    # A field outside `__init__` is left to it, as `dataclasses.replace` leaves it (its
    # default, or what `__post_init__` computes); naming one is a TypeError here.
    made.__replace__ = _replacer(tuple(f for f in fields if f.init))  # type: ignore[attr-defined]
    return made


class once(Generic[_V]):
    """A figure of an `open_record` computed on its first read and kept in the value's
    `__dict__`, where later reads find it without calling anything: `functools.
    cached_property` without the lock Python 3.11 takes on every first read (3.12 dropped
    it; a replay makes tens of thousands of portfolio views)."""

    def __init__(self, compute: Callable[[Any], _V]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[_V]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _V: ...
    def __get__(self, instance: object, owner: type | None = None) -> once[_V] | _V:
        if instance is None:
            return self
        value = self._compute(instance)
        instance.__dict__[self._name] = value
        return value


def _replacer(fields: tuple[Field[Any], ...]) -> Callable[..., Any]:
    """`dataclasses.replace` for one class as straight-line code: each field is the change
    given for it or the value's own; an unknown name raises TypeError, as there."""
    keep = ", ".join(f"{f.name}=_KEEP" for f in fields)
    args = ", ".join(
        f"{f.name + '=' if f.kw_only else ''}self.{f.name} if {f.name} is _KEEP else {f.name}"
        for f in fields
    )
    source = f"def __replace__(self, /, *, {keep}):\n    return self.__class__({args})\n"
    namespace: dict[str, Any] = {"_KEEP": object()}
    exec(source, namespace)  # noqa: S102 - built from the class's own field names
    function: Callable[..., Any] = namespace["__replace__"]
    return function


if TYPE_CHECKING:
    from dataclasses import replace as replace  # mypy checks the changes against the fields
else:

    def replace(obj, /, **changes):
        """`dataclasses.replace`, by the record's generated `__replace__` where it has one."""
        own = getattr(type(obj), "__replace__", None)
        return own(obj, **changes) if own is not None else dataclasses.replace(obj, **changes)
