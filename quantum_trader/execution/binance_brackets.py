"""Binance's leverage brackets (GET /fapi/v1/leverageBracket, signed, weight 1), parsed.

Binance documents the answer as a list of `{"symbol", "notionalCoef"?, "brackets": [{"bracket",
"initialLeverage", "notionalCap", "notionalFloor", "maintMarginRatio", "cum"}, ...]}` (a single
such object when one symbol is asked for). Each symbol is read on its own: one malformed row
costs that symbol its brackets, not the others. Pure functions; no ccxt, no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from quantum_trader.domain import LeverageBracket, MarketRules
from quantum_trader.errors import MarketDataError
from quantum_trader.execution import binance_wire as wire
from quantum_trader.record import record, replace

WHAT = "leverageBracket"
ANY = "*"  # a problem key for the whole answer


@record
class BracketAnswer:
    """Brackets by market id (BTCUSDT), lowest floor first, and one line per unreadable row."""

    by_id: Mapping[str, tuple[LeverageBracket, ...]]
    problems: Mapping[str, str]


def parse_brackets(payload: Any) -> BracketAnswer:
    """Read a leverageBracket answer; MarketDataError when it is not a list (or an object) or
    no row of it can be read."""
    rows = [payload] if isinstance(payload, Mapping) else wire.as_list(payload, WHAT)
    found: dict[str, tuple[LeverageBracket, ...]] = {}
    problems: dict[str, str] = {}
    for index, row in enumerate(rows):
        market_id = row.get("symbol") if isinstance(row, Mapping) else None
        key = str(market_id) if market_id is not None else f"row {index}"
        try:
            found[key] = parse_symbol_brackets(row, f"{WHAT} {key}")
        except MarketDataError as error:
            problems[key] = str(error)
    if problems and not found:
        raise MarketDataError(f"{WHAT}: no readable row ({next(iter(problems.values()))})")
    return BracketAnswer(found, problems)


def parse_symbol_brackets(row: Any, what: str) -> tuple[LeverageBracket, ...]:
    """One symbol's row, lowest floor first: from notional 0, no gap, leverage >= 1; else
    MarketDataError naming `what`. Also reads the brackets saved in a rules file."""
    entries = wire.as_list(wire.field(row, "brackets", what), what)
    if not entries:
        raise MarketDataError(f"{what}: no brackets")
    brackets = sorted(
        (
            LeverageBracket(
                wire.int_field(entry, "initialLeverage", what),
                wire.decimal_field(entry, "notionalFloor", what),
                wire.decimal_field(entry, "notionalCap", what, positive=True),
            )
            for entry in entries
        ),
        key=lambda b: b.notional_floor,
    )
    for lower, upper in itertools.pairwise(brackets):
        if upper.notional_floor != lower.notional_cap:
            raise MarketDataError(f"{what}: a gap or an overlap at notional {lower.notional_cap}")
    if brackets[0].notional_floor != 0 or any(b.initial_leverage < 1 for b in brackets):
        raise MarketDataError(f"{what}: brackets must start at notional 0 with leverage >= 1")
    return tuple(brackets)


def with_brackets(
    rules: Mapping[str, MarketRules],
    answer: BracketAnswer,
    id_by_symbol: Mapping[str, str],
    symbols: Sequence[str],
) -> tuple[dict[str, MarketRules], dict[str, str]]:
    """`symbols`' rules with their brackets (max_leverage = the first bracket's leverage), and
    for each symbol without usable brackets the reason."""
    capped: dict[str, MarketRules] = {}
    missing: dict[str, str] = {}
    for symbol in symbols:
        market_id = id_by_symbol.get(symbol, "")
        brackets = answer.by_id.get(market_id)
        if symbol not in rules or brackets is None:
            reason = answer.problems.get(market_id) or answer.problems.get(
                ANY, f"{WHAT}: no brackets for {market_id or symbol}"
            )
            missing[symbol] = reason
            continue
        capped[symbol] = bracketed(rules[symbol], brackets)
    return capped, missing


def bracketed(rules: MarketRules, brackets: tuple[LeverageBracket, ...]) -> MarketRules:
    """`rules` bound by `brackets`: each notional's leverage, and the highest as the ceiling."""
    return replace(
        rules,
        max_leverage=max(b.initial_leverage for b in brackets),
        leverage_brackets=brackets,
    )
