"""`PerSymbol`: a market view's field whose values are made when first read."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from quantum_trader.market.series import SymbolSeries

_Value = TypeVar("_Value")


class PerSymbol(Mapping[str, _Value]):
    """A field of a view: the value of each symbol shown, made from its row when first read.
    A backtest's cycles read few: ≈ 3 of the 8 prices (2,053 of 5,424 in two weeks; a price
    costs ≈ 6,500 instructions) and, its views carrying the correlations and the hourly
    z-scores, none of the returns (≈ 4,500 each). Equal, as a mapping, to the dict of every
    value."""

    __slots__ = ("_made", "_make", "_rows")

    def __init__(
        self,
        rows: Mapping[str, tuple[SymbolSeries, int]],
        make: Callable[[SymbolSeries, int], _Value],
    ) -> None:
        self._rows = rows
        self._make = make
        self._made: dict[str, _Value] = {}

    def __getitem__(self, symbol: str) -> _Value:
        value = self._made.get(symbol)
        if value is None:
            value = self._made[symbol] = self._make(*self._rows[symbol])
        return value

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._rows  # without making the value (Mapping's would)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return repr(dict(self))
