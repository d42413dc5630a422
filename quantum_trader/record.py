"""`@record`: an immutable value — a slotted dataclass, frozen for the type checker.

It replaces `@dataclass(frozen=True, slots=True)`, which enforces immutability at run time
at a price paid on every value made: a frozen dataclass's `__init__` sets each field through
`object.__setattr__`, past its own refusing `__setattr__`. Making a 24-field `Position` took
1.69 µs frozen against 0.26 µs unfrozen, and `dataclasses.replace` of one field 3.9 µs
against 2.5 µs. A replay makes values at every step, and this was ≈ 10 % of the year's
backtest (docs/BENCHMARKS.md, "Tenth pass").

Immutability is kept where the project's other type contracts are kept (`Mapping`, `tuple`,
`Final`): the type checker rejects any assignment to a record's field (PEP 681's
`frozen_default`), and `make test` runs mypy strict over the whole tree. At run time a record
compares and hashes by value exactly like the frozen dataclass (the same generated `__eq__`
and `__hash__`), has slots and no `__dict__`, and `dataclasses.replace` and `fields` work on
it. A record that must compute a field once (`field(init=False)`) sets it in
`__post_init__` with `object.__setattr__`, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import Field, dataclass, field
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: type[_T]) -> type[_T]:
    """`cls` as a slotted dataclass compared and hashed by its fields, read-only when typed."""
    return dataclass(slots=True, unsafe_hash=True)(cls)


def replacer(cls: type[_T]) -> Callable[..., _T]:
    """`dataclasses.replace` for one record class, ≈ 3 × as fast on a 24-field class: the
    fields are read by generated code, not by a loop over `fields()`. For the hottest call
    sites only: unlike `dataclasses.replace` it is not checked by mypy (its changes are
    `Any`); an unknown field raises TypeError as there."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__}: replacer() needs every field in __init__")
    names = [f.name for f in fields]
    kw_only = {f.name for f in fields if f.kw_only}
    keep = ", ".join(f"{n}=_KEEP" for n in names)
    args = ", ".join(
        f"{n + '=' if n in kw_only else ''}obj.{n} if {n} is _KEEP else {n}" for n in names
    )
    source = f"def replace(obj, /, *, {keep}):\n    return _cls({args})\n"
    namespace: dict[str, Any] = {"_KEEP": object(), "_cls": cls}
    exec(source, namespace)  # noqa: S102 - the source is built from the class's own field names
    function: Callable[..., _T] = namespace["replace"]
    function.__qualname__ = f"replacer({cls.__qualname__})"
    return function
