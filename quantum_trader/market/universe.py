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
from quantum_trader.record import record

DAY_MS = 86_400_000


def rank(
    volumes: Mapping[str, float],
    listings: Mapping[str, SymbolListing],
    now_ms: int,
    settings: UniverseSettings,
) -> tuple[str, ...]:
    """The `top_n` symbols by volume (ties by name) that are TRADING-listed long enough and not
    blacklisted; a symbol with no listing date is left out (its age cannot be checked)."""
    eligible = [
        symbol
        for symbol, volume in volumes.items()
        if volume > 0 and _exclusion(symbol, listings, now_ms, settings) is None
    ]
    eligible.sort(key=lambda symbol: (-volumes[symbol], symbol))
    return tuple(eligible[: settings.top_n])


def _exclusion(
    symbol: str, listings: Mapping[str, SymbolListing], now_ms: int, settings: UniverseSettings
) -> str | None:
    """Why the rule never picks `symbol` whatever its volume, or None."""
    listing = listings.get(symbol)
    if listing is None:
        return "not a listed USDT perpetual with readable rules"
    if symbol in settings.blacklist:
        return "blacklisted (market.universe.blacklist)"
    if listing.status not in ("TRADING", ""):
        return f"status {listing.status}, not TRADING"
    if listing.onboard_ms is None:
        return "no listing date (onboardDate)"
    if listing.onboard_ms > now_ms - settings.min_listing_days * DAY_MS:
        return f"listed under {settings.min_listing_days:g} days"
    return None


def explain(
    symbol: str,
    volumes: Mapping[str, float],
    listings: Mapping[str, SymbolListing],
    now_ms: int,
    settings: UniverseSettings,
) -> str:
    """Why the rule picks `symbol` or leaves it out, in words for the log."""
    excluded = _exclusion(symbol, listings, now_ms, settings)
    if excluded is not None:
        return excluded
    volume = volumes.get(symbol, 0.0)
    if volume <= 0:
        return "no 24 h quote volume"
    ahead = sum(
        1
        for other, v in volumes.items()
        if (v, symbol) > (volume, other)
        and v > 0
        and _exclusion(other, listings, now_ms, settings) is None
    )
    place = f"rank {ahead + 1} by 24 h quote volume ({volume:,.0f} USDT)"
    return place if ahead < settings.top_n else f"{place}, outside the top {settings.top_n}"


def market_ids(exchange_info: Mapping[str, Any]) -> dict[str, str]:
    """Binance market id (BTCUSDT) by ccxt symbol, for the USDT perpetuals of exchangeInfo."""
    ids = {}
    for entry in wire.as_list(exchange_info.get("symbols"), "exchangeInfo symbols"):
        symbol = usdt_perpetual_symbol(entry)
        if symbol is not None:
            ids[symbol] = str(entry["symbol"])
    return ids


def recorded_volume(bars: Bars, now_ms: int) -> float:
    """Quote volume (USDT) of the bars that closed in the 24 h before `now_ms`."""
    stop = bars.closed_before(now_ms)
    start = bars.closed_before(now_ms - DAY_MS)
    window = slice(start, stop)
    return float((bars.close[window] * bars.volume[window]).sum())


def ticker_volumes(payload: Sequence[Any], exchange_info: Mapping[str, Any]) -> dict[str, float]:
    """`quoteVolume` by ccxt symbol from ticker/24hr rows, for USDT perpetuals only."""
    by_id = {market_id: symbol for symbol, market_id in market_ids(exchange_info).items()}
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


@record
class LivePick:
    """The rule applied to the exchange's answers, with what it was decided from."""

    chosen: tuple[str, ...]
    listings: Mapping[str, SymbolListing]
    volumes: Mapping[str, float]
    ids: Mapping[str, str]  # Binance market id by ccxt symbol


def pick_live(
    exchange_info: Mapping[str, Any],
    tickers: Sequence[Any] | None,
    now_ms: int,
    settings: UniverseSettings,
) -> LivePick:
    """The rule (or, with `tickers` None, nothing: a fixed list) over exchangeInfo and
    ticker/24hr; ConfigurationError when the rule picks no symbol."""
    listings = parse_rules({"exchangeInfo": exchange_info}, Path("exchangeInfo")).listings
    volumes = {} if tickers is None else ticker_volumes(tickers, exchange_info)
    chosen = rank(volumes, listings, now_ms, settings) if tickers is not None else ()
    if tickers is not None:
        require_some(chosen, settings, "the exchange's 24 h tickers")
    return LivePick(chosen, listings, volumes, market_ids(exchange_info))


def resolve_live(
    exchange_info: Mapping[str, Any],
    tickers: Sequence[Any],
    now_ms: int,
    settings: UniverseSettings,
) -> tuple[str, ...]:
    """The rule applied to the exchange's answers: exchangeInfo and ticker/24hr."""
    return pick_live(exchange_info, tickers, now_ms, settings).chosen
