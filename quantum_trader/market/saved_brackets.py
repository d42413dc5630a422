"""The leverage brackets a rules file saved beside Binance's exchangeInfo answer.

`download-data` saves GET /fapi/v1/leverageBracket's answer as it came: each symbol's brackets
with their notional floor and cap. Those are read and checked as testnet/live reads them
(`binance_brackets.parse_symbol_brackets`), so the risk guard bounds paper runs and backtests
by the bracket of each order's notional, as Binance bounds the live account. A row giving
only `initialLeverage` (the bundled sample's, files written before) is a ceiling alone: the
highest, for every notional. A row that cannot be read costs its symbol its rules, said when
that symbol is asked for; the other symbols keep theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from quantum_trader.domain import LeverageBracket, MarketRules
from quantum_trader.errors import MarketDataError
from quantum_trader.execution import binance_wire as wire
from quantum_trader.execution.binance_brackets import bracketed, parse_symbol_brackets
from quantum_trader.record import record, replace


@record
class SavedBrackets:
    """Brackets by market id (BTCUSDT): in full, as ceilings alone, or why they cannot be read."""

    full: Mapping[str, tuple[LeverageBracket, ...]] = field(default_factory=dict)
    ceilings: Mapping[str, int] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.full or self.ceilings)

    def applied(self, rules: MarketRules, market_id: str) -> MarketRules:
        """`rules` bound by this market's brackets; MarketDataError when its row is unreadable."""
        if market_id in self.problems:
            raise MarketDataError(self.problems[market_id])
        if market_id in self.full:
            return bracketed(rules, self.full[market_id])
        if market_id in self.ceilings:
            return replace(rules, max_leverage=self.ceilings[market_id])
        return rules


def read_brackets(payload: Any, path: Path) -> SavedBrackets:
    """A rules file's `leverageBrackets` (None: none saved); MarketDataError naming the file
    when it is not a list of rows that each name their symbol."""
    if payload is None:
        return SavedBrackets()
    full: dict[str, tuple[LeverageBracket, ...]] = {}
    ceilings: dict[str, int] = {}
    problems: dict[str, str] = {}
    for row in wire.as_list(payload, f"{path} leverageBrackets"):
        market_id = str(wire.field(row, "symbol", f"{path} leverageBrackets"))
        what = f"leverageBrackets {market_id}"
        try:
            if _gives_leverage_only(row):
                ceiling = _ceiling(row, what)
                if ceiling is not None:
                    ceilings[market_id] = ceiling
            else:
                full[market_id] = parse_symbol_brackets(row, what)
        except MarketDataError as error:
            problems[market_id] = str(error)
    return SavedBrackets(full, ceilings, problems)


def _gives_leverage_only(row: Any) -> bool:
    """No bracket of the row states a notional bound (a sample's or an older file's row)."""
    entries = row.get("brackets") if isinstance(row, Mapping) else None
    return isinstance(entries, list) and all(
        isinstance(entry, Mapping) and "notionalCap" not in entry and "notionalFloor" not in entry
        for entry in entries
    )


def _ceiling(row: Mapping[str, Any], what: str) -> int | None:
    entries = row["brackets"]
    if not entries:
        return None
    ceiling = max(wire.int_field(entry, "initialLeverage", what) for entry in entries)
    if ceiling < 1:
        raise MarketDataError(f"{what}: initialLeverage must be at least 1, got {ceiling}")
    return ceiling
