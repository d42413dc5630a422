"""A view's lazily made field (market/per_symbol.py): a mapping like the dict it stands for."""

from __future__ import annotations

from typing import Any

from quantum_trader.market.per_symbol import PerSymbol


def _field(made: list[str]) -> PerSymbol[str]:
    rows: dict[str, tuple[Any, int]] = {"BTC": (None, 3), "ETH": (None, 5)}
    symbol_of = {3: "BTC", 5: "ETH"}

    def make(series: Any, row: int) -> str:
        made.append(symbol_of[row])
        return f"value at row {row}"

    return PerSymbol(rows, make)


def test_it_equals_the_dict_of_every_value_and_makes_each_once() -> None:
    made: list[str] = []
    field = _field(made)
    assert field == {"BTC": "value at row 3", "ETH": "value at row 5"}
    assert field["BTC"] == "value at row 3"
    assert sorted(made) == ["BTC", "ETH"]  # the comparison made each, the read reused it


def test_membership_and_size_make_nothing() -> None:
    made: list[str] = []
    field = _field(made)
    assert "ETH" in field
    assert "SOL" not in field
    assert len(field) == 2
    assert list(field) == ["BTC", "ETH"]
    assert field.get("SOL") is None
    assert made == []
