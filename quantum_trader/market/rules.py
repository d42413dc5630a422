"""Market rules saved beside the candles: Binance's own exchange information, dated.

`download-data` writes `exchange-info-YYYY-MM-DD.json` into the market data directory: the
answer of GET /fapi/v1/exchangeInfo as Binance sent it (through ccxt), and, when exchange keys
are configured, GET /fapi/v1/leverageBracket (Binance serves brackets to signed requests only).
Paper mode and backtests read the newest such file; the bundled sample ships its own. A
symbol's brackets bound each order by its notional, as Binance does (market.saved_brackets);
without brackets a symbol's maximum leverage is Binance's ceiling, 125: the settings' own caps
(sizing.max_leverage, risk.max_leverage) still bind. An entry that cannot be used is refused
when its symbol is asked for, naming the file; a file listing the symbol decides over the
bundled sample's rules.

Each symbol's quantity limits are read from both LOT_SIZE (limit orders) and MARKET_LOT_SIZE
(market orders: every entry and close we send) by `binance_wire.parse_market_rules`; a file
whose entries lack MARKET_LOT_SIZE (an older or hand-made one) falls back to LOT_SIZE for market
orders, and a filter without `maxQty` sets no maximum (the bundled sample's have none).

    {"source": "...", "fetched_at": "2026-02-19T10:00:00+00:00",
     "exchangeInfo": {"symbols": [{"symbol": "AVAXUSDT", "filters": [...], ...}, ...]},
     "leverageBrackets": [{"symbol": "AVAXUSDT", "brackets": [{"initialLeverage": 75, ...}]}]}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

from quantum_trader.domain import MarketRules
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.execution import binance_wire as wire
from quantum_trader.market.saved_brackets import read_brackets
from quantum_trader.record import record

RULES_GLOB = "exchange-info-*.json"
_RULES_NAME = re.compile(r"^exchange-info-(\d{4}-\d{2}-\d{2})\.json$")
SOURCE = "Binance USD-M GET /fapi/v1/exchangeInfo (+ /fapi/v1/leverageBracket), via ccxt"


@record
class SymbolListing:
    """What the rules file says about one perpetual besides its filters."""

    rules: MarketRules
    status: str
    onboard_ms: int | None


@record
class RulesFile:
    path: Path
    fetched_at: str
    listings: Mapping[str, SymbolListing]
    has_brackets: bool
    # Symbols the file names but whose entry cannot be used, and why (said for a symbol asked).
    unusable: Mapping[str, str] = field(default_factory=dict)


def rules_file_name(fetched_at: datetime) -> str:
    return f"exchange-info-{fetched_at.date().isoformat()}.json"


def write_rules(
    directory: Path,
    exchange_info: Mapping[str, Any],
    fetched_at: datetime,
    brackets: Sequence[Any] | None = None,
    source: str = SOURCE,
) -> Path:
    """Save an exchangeInfo answer (and brackets) atomically; return the file's path.

    Raises MarketDataError when the answer holds no readable USDT perpetual.
    """
    document = {
        "source": source,
        "fetched_at": fetched_at.isoformat(),
        "exchangeInfo": exchange_info,
        "leverageBrackets": list(brackets) if brackets is not None else None,
    }
    parse_rules(document, Path("exchangeInfo"))  # refuse to save what could not be read back
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / rules_file_name(fetched_at)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(partial, path)
    return path


def newest_rules_file(directory: Path) -> Path | None:
    """The newest `exchange-info-YYYY-MM-DD.json` in `directory`, or None."""
    dated = sorted(
        (found[1], path)
        for path in directory.glob(RULES_GLOB)
        if (found := _RULES_NAME.match(path.name))
    )
    return dated[-1][1] if dated else None


def read_rules(path: Path) -> RulesFile:
    """Read a rules file; MarketDataError naming the file when it cannot be read at all. An
    entry that cannot be used is kept in `unusable` with why: refused when its symbol is asked
    for (`rules_for`), as for a file whose every entry is so."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MarketDataError(f"{path.name}: not a readable rules file ({error})") from error
    return read_listings(document, path)


def parse_rules(document: Any, path: Path) -> RulesFile:
    """`read_listings`, refusing (MarketDataError) a document with no usable USDT perpetual:
    what a download or an import would save, and a live exchangeInfo answer."""
    found = read_listings(document, path)
    if not found.listings:
        named = list(found.unusable.items())[:3]
        why = "; ".join(f"{symbol}: {reason}" for symbol, reason in named)
        raise MarketDataError(
            f"{path}: no USDT-margined perpetual in the exchange answer"
            + (f" that can be used ({why})" if why else "")
        )
    return found


def read_listings(document: Any, path: Path) -> RulesFile:
    """Every USDT perpetual of a rules document, its leverage brackets applied; MarketDataError
    only when the document's shape is wrong (no exchangeInfo object, lists that are none)."""
    if not isinstance(document, dict) or not isinstance(document.get("exchangeInfo"), dict):
        raise MarketDataError(f"{path}: no 'exchangeInfo' object (Binance's answer)")
    brackets = read_brackets(document.get("leverageBrackets"), path)
    listings: dict[str, SymbolListing] = {}
    unusable: dict[str, str] = {}
    for entry in wire.as_list(document["exchangeInfo"].get("symbols"), f"{path} symbols"):
        symbol = usdt_perpetual_symbol(entry)
        if symbol is None:
            _note_other_contract(entry, unusable)
            continue
        try:
            rules = brackets.applied(wire.parse_market_rules(symbol, entry), str(entry["symbol"]))
            onboard = _onboard_ms(entry.get("onboardDate"))
        except MarketDataError as error:  # that symbol has no rules: why, for who asks
            unusable[symbol] = str(error)
            continue
        listings[symbol] = SymbolListing(rules, str(entry.get("status", "")), onboard)
    fetched_at = str(document.get("fetched_at", ""))
    return RulesFile(path, fetched_at, listings, brackets.any, unusable)


def _onboard_ms(value: Any) -> int | None:
    """An entry's `onboardDate` (epoch ms) or None; MarketDataError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MarketDataError(f"onboardDate {value!r} is not epoch milliseconds")
    try:
        return int(value)
    except ValueError:
        raise MarketDataError(f"onboardDate {value!r} is not epoch milliseconds") from None


def _note_other_contract(entry: Any, unusable: dict[str, str]) -> None:
    """An entry for a base asset's other contract (a quarterly, a USDC one): what it is, for
    a symbol asked that has no USDT perpetual in the file."""
    if not isinstance(entry, dict) or not isinstance(entry.get("baseAsset"), str):
        return
    symbol = f"{entry['baseAsset']}/USDT:USDT"
    kind = ", ".join(
        f"{key} {entry.get(key)!r}" for key in ("contractType", "quoteAsset", "marginAsset")
    )
    unusable.setdefault(symbol, f"listed only as another contract ({kind}), not a USDT perpetual")


def usdt_perpetual_symbol(entry: Any) -> str | None:
    """`BTC/USDT:USDT` for an exchangeInfo entry of a USDT-margined perpetual, else None."""
    if not isinstance(entry, dict) or entry.get("contractType") != "PERPETUAL":
        return None
    base, quote, margin = (entry.get(k) for k in ("baseAsset", "quoteAsset", "marginAsset"))
    if quote != "USDT" or margin != "USDT" or not isinstance(base, str) or "symbol" not in entry:
        return None
    return f"{base}/USDT:USDT"


def rules_for(
    symbols: Sequence[str], sources: Sequence[RulesFile], directory: Path
) -> dict[str, MarketRules]:
    """The rules of `symbols` from the first source that names each; ConfigurationError (exit 2)
    naming every symbol without rules and how to get them."""
    rules: dict[str, MarketRules] = {}
    problems = []
    for symbol in symbols:
        source = deciding_source(symbol, sources)
        if source is None:
            problems.append(missing_rules_message(symbol, directory))
        elif symbol in source.listings:
            rules[symbol] = source.listings[symbol].rules
        else:
            problems.append(unusable_rules_message(symbol, source))
    if problems:
        raise ConfigurationError(problems)
    return rules


def deciding_source(symbol: str, sources: Sequence[RulesFile]) -> RulesFile | None:
    """The first source that names `symbol`, usable or not: an entry the user's file holds
    but that cannot be used is refused, not replaced by the bundled sample's rules."""
    return next((s for s in sources if symbol in s.listings or symbol in s.unusable), None)


def not_trading(
    symbols: Sequence[str], sources: Sequence[RulesFile]
) -> dict[str, tuple[str, RulesFile]]:
    """The symbols whose listing `rules_for` uses has a status other than TRADING (BREAK,
    SETTLING, CLOSE, ...), with that status and its file. A file without statuses lists none."""
    found = {}
    for symbol in symbols:
        source = deciding_source(symbol, sources)
        if source is not None and symbol in source.listings:
            status = source.listings[symbol].status
            if status not in ("TRADING", ""):
                found[symbol] = (status, source)
    return found


def unusable_rules_message(symbol: str, source: RulesFile) -> str:
    return (
        f"market rules: {symbol}'s entry in {source.path} cannot be used "
        f"({source.unusable[symbol]}); `quantum-trader download-data --symbols {symbol}` saves "
        "Binance's rules as they are, or pass a corrected copy of Binance's answer to "
        "`quantum-trader import-data --exchange-info FILE`"
    )


def missing_rules_message(symbol: str, directory: Path) -> str:
    return (
        f"market rules: none for {symbol} in {directory} ({RULES_GLOB}); "
        f"`quantum-trader download-data --symbols {symbol}` saves Binance's rules beside the "
        "candles, or offline save the answer of https://fapi.binance.com/fapi/v1/exchangeInfo "
        "and pass it to `quantum-trader import-data --exchange-info FILE`"
    )
