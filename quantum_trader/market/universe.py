"""The universe: which perpetuals to trade, by a fixed list or a rule (market.universe).

`rank` is pure: the top N by 24 h quote volume among the candidates old enough and not
blacklisted. Volumes come from the exchange's GET /fapi/v1/ticker/24hr (`quoteVolume`) in
testnet/live, or from the recorded candles (Σ close × volume over the 24 h before the start)
in paper mode and backtests; listing dates from exchangeInfo's `onboardDate` (the rules file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quantum_trader.domain import Bars
from quantum_trader.errors import ConfigurationError
from quantum_trader.execution import binance_wire as wire
from quantum_trader.market.rules import SymbolListing, parse_rules, usdt_perpetual_symbol
from quantum_trader.market.settings import UniverseSettings

DAY_MS = 86_400_000


def rank(
    volumes: Mapping[str, float],
    listings: Mapping[str, SymbolListing],
    now_ms: int,
    settings: UniverseSettings,
) -> tuple[str, ...]:
    """The `top_n` symbols by volume (ties by name) that are TRADING-listed long enough and not
    blacklisted; a symbol with no listing date is left out (its age cannot be checked)."""
    oldest_listing_ms = now_ms - settings.min_listing_days * DAY_MS
    eligible = [
        symbol
        for symbol, volume in volumes.items()
        if symbol in listings
        and symbol not in settings.blacklist
        and listings[symbol].status in ("TRADING", "")
        and listings[symbol].onboard_ms is not None
        and listings[symbol].onboard_ms <= oldest_listing_ms  # type: ignore[operator]
        and volume > 0
    ]
    eligible.sort(key=lambda symbol: (-volumes[symbol], symbol))
    return tuple(eligible[: settings.top_n])


def recorded_volume(bars: Bars, now_ms: int) -> float:
    """Quote volume (USDT) of the bars that closed in the 24 h before `now_ms`."""
    stop = bars.closed_before(now_ms)
    start = bars.closed_before(now_ms - DAY_MS)
    window = slice(start, stop)
    return float((bars.close[window] * bars.volume[window]).sum())


def ticker_volumes(payload: Sequence[Any], exchange_info: Mapping[str, Any]) -> dict[str, float]:
    """`quoteVolume` by ccxt symbol from ticker/24hr rows, for USDT perpetuals only."""
    by_id = {}
    for entry in wire.as_list(exchange_info.get("symbols"), "exchangeInfo symbols"):
        symbol = usdt_perpetual_symbol(entry)
        if symbol is not None:
            by_id[str(entry["symbol"])] = symbol
    volumes = {}
    for row in payload:
        market_id = str(wire.field(row, "symbol", "ticker/24hr"))
        if market_id in by_id:
            volumes[by_id[market_id]] = float(wire.decimal_field(row, "quoteVolume", market_id))
    return volumes


def require_some(chosen: Sequence[str], settings: UniverseSettings, where: str) -> None:
    if not chosen:
        raise ConfigurationError(
            [
                f"market.universe: the rule {settings.rule} (top {settings.top_n}, listed "
                f"{settings.min_listing_days} days, blacklist {list(settings.blacklist)}) "
                f"picks no symbol from {where}"
            ]
        )


def resolve_recorded(
    bars: Mapping[str, Bars],
    listings: Mapping[str, SymbolListing],
    now_ms: int,
    settings: UniverseSettings,
) -> tuple[str, ...]:
    """The rule applied to recorded candles as of `now_ms` (no look-ahead)."""
    volumes = {symbol: recorded_volume(b, now_ms) for symbol, b in bars.items()}
    chosen = rank(volumes, listings, now_ms, settings)
    require_some(chosen, settings, "the recorded data")
    return chosen


def resolve_live(
    exchange_info: Mapping[str, Any],
    tickers: Sequence[Any],
    now_ms: int,
    settings: UniverseSettings,
) -> tuple[str, ...]:
    """The rule applied to the exchange's answers: exchangeInfo and ticker/24hr."""
    listings = parse_rules({"exchangeInfo": exchange_info}, Path("exchangeInfo")).listings
    chosen = rank(ticker_volumes(tickers, exchange_info), listings, now_ms, settings)
    require_some(chosen, settings, "the exchange's 24 h tickers")
    return chosen
