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
the fields) and, at run time, a record's own copy, compiled at its first copy and handed the
changes as the dict `replace` received them in (passing them on as keywords would pack and
unpack them once more). A record whose `__init__` only stores its fields (generated, no
`__post_init__`; a field outside `__init__` has a default) is copied without calling it: a
new value gets every field by straight-line code, then the changes (a `Position` copy in
about half the time of one by `__init__`). Any other record is copied by `__init__`, the
fields in it read by straight-line code, so a field outside it is made again, as
`dataclasses.replace` does. Other dataclasses go to `dataclasses.replace`.
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
    own_init = "__init__" in vars(cls)  # before `dataclass` adds the generated one
    return _with_copy(dataclass(slots=True, unsafe_hash=True)(cls), slotted=not own_init)


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def open_record(cls: type[_T]) -> type[_T]:
    """`record` with a `__dict__`, for a value whose derived figures are computed once on
    first read (`once`), which slots would leave nowhere to keep."""
    return _with_copy(dataclass(unsafe_hash=True)(cls), slotted=False)


def _with_copy(made: type[_T], *, slotted: bool) -> type[_T]:
    """`made` with its copy (`replace`), compiled at its first copy: compiling them for each
    of the ≈ 190 records a backtest imports cost ≈ 100 M instructions of the command's start
    (callgrind), and most records are never copied. `slotted`: a record of slots whose
    `__init__` is generated."""

    def first_copy(value: Any, changes: dict[str, Any]) -> Any:
        copy = _copy_of(made, slotted=slotted)
        made._record_copy = copy  # type: ignore[attr-defined]  # later copies call it
        return copy(value, changes)

    made._record_copy = first_copy  # type: ignore[attr-defined]
    made.__replace__ = _replace  # type: ignore[attr-defined]
    return made


def _replace(self: Any, /, **changes: Any) -> Any:
    """`replace(self, **changes)`."""
    return self._record_copy(changes)


def _copy_of(made: type, *, slotted: bool) -> Callable[[Any, dict[str, Any]], Any]:
    """`made`'s copy: without `__init__` where that only stores the fields (no `__post_init__`;
    a field outside `__init__` has a default, which the copy stores); otherwise by `__init__`.
    A field outside `__init__` is left to it, as `dataclasses.replace` leaves it (its default,
    or what `__post_init__` computes); naming one is a TypeError here."""
    fields = dataclasses.fields(made)
    replacer = _replacer(tuple(f for f in fields if f.init))

    def by_init(value: Any, changes: dict[str, Any]) -> Any:
        return replacer(value, **changes)

    if not slotted or hasattr(made, "__post_init__"):
        return by_init
    if not all(f.init or f.default is not dataclasses.MISSING for f in fields):
        return by_init
    return _copier(made, fields, by_init)


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


def _copier(
    made: type, fields: tuple[Field[Any], ...], by_init: Callable[[Any, dict[str, Any]], Any]
) -> Callable[[Any, dict[str, Any]], Any]:
    """A copy of a `made` value with `changes` (a dict of field names) that does not call
    `__init__`: about half the time of the copy by it for a `Position` (3.11 makes a frame for
    `__init__` under the type's call). An unknown name raises TypeError, as there; a value of
    a subclass is copied `by_init`, by the subclass."""
    stores = "".join(
        f"    new.{f.name} = {'self.' if f.init else 'default_'}{f.name}\n" for f in fields
    )
    source = (
        "def _record_copy(self, changes):\n"
        "    if self.__class__ is not made:\n"
        "        return by_init(self, changes)\n"
        "    new = new_value(made)\n"
        f"{stores}"
        "    for name, value in changes.items():\n"
        "        if name not in names:\n"
        "            raise TypeError(f'{made.__name__}.__replace__() got an unexpected keyword"
        " argument {name!r}')\n"
        "        setattr(new, name, value)\n"
        "    return new\n"
    )
    names = frozenset(f.name for f in fields if f.init)
    namespace: dict[str, Any] = {"made": made, "new_value": object.__new__, "names": names}
    namespace["by_init"] = by_init
    namespace |= {f"default_{f.name}": f.default for f in fields if not f.init}
    exec(source, namespace)  # noqa: S102 - built from the class's own field names
    function: Callable[[Any, dict[str, Any]], Any] = namespace["_record_copy"]
    return function


def replace_from(obj: _T, changes: dict[str, Any]) -> _T:
    """`replace(obj, **changes)` for changes gathered in a dict as the code runs (which the type
    checker cannot check against the fields either way), handed on without keywords."""
    copy = getattr(type(obj), "_record_copy", None)
    if copy is not None:
        copied: _T = copy(obj, changes)
        return copied
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


if TYPE_CHECKING:
    from dataclasses import replace as replace  # mypy checks the changes against the fields
else:

    def replace(obj, /, **changes):
        """`dataclasses.replace`, by the record's generated copy where it has one."""
        copy = getattr(type(obj), "_record_copy", None)
        return copy(obj, changes) if copy is not None else dataclasses.replace(obj, **changes)
