"""`@record` (record.py): the frozen dataclass's value semantics, read-only for mypy strict,
and `replace`, `dataclasses.replace` by a record's generated `__replace__`; `@open_record`, the
same with a `__dict__` for the figures `once` computes on first read."""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from mypy import api as mypy_api
from position_builders import position

from quantum_trader.domain import ExitMode, Position, TrailMode
from quantum_trader.keeper.book import Book
from quantum_trader.record import once, open_record, record, replace, replace_from

ROOT = Path(__file__).resolve().parents[2]


@record
class Pair:
    name: str
    values: tuple[int, ...] = ()
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.values))


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenPair:  # what `record` replaces
    name: str
    values: tuple[int, ...] = ()
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.values))


@open_record
class Account:
    equity: int
    reference: int

    @once
    def share(self) -> float:
        """The equity as a share of the reference."""
        COMPUTED.append(self.equity)
        return self.equity / self.reference


COMPUTED: list[int] = []


@record
class Scaled:
    """A record with an `__init__` of its own: a copy goes through it."""

    value: int

    def __init__(self, value: int) -> None:
        self.value = value * 10  # type: ignore[misc]  # its own constructor sets the field


@record
class Point:
    x: int
    y: int = 0


class NamedPoint(Point):
    """A plain subclass of a record: a copy is made by its class, as `dataclasses.replace`."""

    __slots__ = ("made",)

    def __init__(self, x: int, y: int = 0) -> None:
        super().__init__(x, y)
        self.made = "by init"


def test_a_record_compares_hashes_and_prints_like_the_frozen_dataclass() -> None:
    a, b, c = Pair("x", (1, 2)), Pair("x", (1, 2)), Pair("x", (1, 3))
    assert a == b
    assert a != c
    assert hash(a) == hash(b) == hash(FrozenPair("x", (1, 2)))
    assert len({a, b, c}) == 2
    assert repr(a) == repr(FrozenPair("x", (1, 2))).replace("FrozenPair", "Pair")
    assert a.total == 3  # computed once in __post_init__, as before
    assert not hasattr(a, "__dict__")  # slotted
    assert dataclasses.replace(a, values=(5,)) == Pair("x", (5,))
    assert [f.name for f in dataclasses.fields(a)] == ["name", "values", "total"]


def test_mypy_strict_rejects_assigning_a_field_of_a_record_open_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYPYPATH", str(ROOT))  # quantum_trader, wherever the test runs from
    (tmp_path / "empty.toml").write_text("")
    snippet = tmp_path / "assigns.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from quantum_trader.record import open_record, record

            @record
            class Price:
                value: int

            @open_record
            class Quote:
                value: int

            Price(1).value = 2
            Quote(1).value = 2
            """
        )
    )
    options = ["--strict", "--python-version", "3.11", "--follow-imports", "silent"]
    own = ["--config-file", str(tmp_path / "empty.toml"), "--cache-dir", str(tmp_path / "cache")]
    out, _, status = mypy_api.run([str(snippet), *options, *own, "--no-site-packages"])
    assert status == 1, out
    assert 'Property "value" defined in "Price" is read-only' in out
    assert 'Property "value" defined in "Quote" is read-only' in out


def test_replace_gives_what_dataclasses_replace_gives_for_every_field() -> None:
    base = position()
    assert hasattr(Position, "__replace__")  # the generated one, not the loop over fields()
    other = position(entry=Decimal(80_000), opened_at=base.opened_at + timedelta(hours=1))
    changes = {f.name: getattr(other, f.name) for f in dataclasses.fields(Position)}
    changes |= {"exit_mode": ExitMode.TREND_FOLLOW, "trail_mode": TrailMode.LOOSE, "leverage": 7}
    changes |= {"stop_order_id": "s1", "break_even_done": True, "highest_price": Decimal(1)}
    for name, value in changes.items():
        assert replace(base, **{name: value}) == dataclasses.replace(base, **{name: value})
    assert replace(base, **changes) == dataclasses.replace(base, **changes)
    assert replace(base) == base


def test_replace_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'stop'"):
        replace(position(), stop=Decimal(1))  # type: ignore[call-arg]  # mypy refuses it too


def test_replace_of_a_value_with_computed_fields_makes_them_again_as_dataclasses_replace() -> None:
    pair = Pair("x", (1, 2))
    assert hasattr(Pair, "__replace__")  # the generated one, over the fields in __init__
    assert replace(pair, values=(4,)).total == dataclasses.replace(pair, values=(4,)).total == 4
    assert replace(pair, values=(4,)) == Pair("x", (4,))
    assert replace(FrozenPair("y"), name="z") == FrozenPair("z")  # any dataclass
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(pair, total=9)
    with pytest.raises(TypeError, match="unexpected keyword argument 'total'"):
        replace(pair, total=9)  # a field outside __init__


def test_replace_leaves_a_field_outside_init_to_its_default() -> None:
    book = Book(positions={"BTC/USDT:USDT": position()})
    assert book.blocked() == {}  # kept on the book once asked
    assert book._blocked == {}
    replaced = replace(book, positions={})
    assert replaced._blocked is None  # asked again of the new book
    assert replaced == dataclasses.replace(book, positions={})


def test_an_open_record_computes_each_figure_once_and_compares_by_its_fields() -> None:
    COMPUTED.clear()
    a, b = Account(3, 4), Account(3, 4)
    assert a.share == b.share == 0.75
    assert a.share == 0.75
    assert COMPUTED == [3, 3]  # once per value: the second read finds it kept
    assert a == b
    assert hash(a) == hash(b)
    assert replace(a, equity=1).share == 0.25  # a new value computes its own
    assert COMPUTED == [3, 3, 1]
    assert [f.name for f in dataclasses.fields(a)] == ["equity", "reference"]
    assert repr(a) == "Account(equity=3, reference=4)"


def test_once_is_read_on_the_class_as_itself_with_its_docstring() -> None:
    assert isinstance(Account.share, once)
    assert Account.share.__doc__ == "The equity as a share of the reference."


def test_a_record_copy_is_made_by_its_init_where_that_does_more_than_store_the_fields() -> None:
    assert replace(Scaled(1), value=2) == dataclasses.replace(Scaled(1), value=2)
    assert replace(Scaled(1), value=2).value == 20
    assert replace(Pair("x", (1,)), values=(2, 3)).total == 5  # `__post_init__`
    copied = replace(NamedPoint(1), y=2)
    assert type(copied) is NamedPoint
    assert (copied.x, copied.y, copied.made) == (1, 2, "by init")


def test_a_plain_record_copy_is_every_field_then_the_changes() -> None:
    point = Point(1, 2)
    assert replace(point, y=5) == Point(1, 5) == dataclasses.replace(point, y=5)
    assert replace(point) == point
    assert replace(point) is not point
    assert replace_from(point, {"x": 7}) == Point(7, 2)
    assert replace_from(Pair("x", (1,)), {"values": (4,)}).total == 4
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        replace_from(point, {"z": 1})
