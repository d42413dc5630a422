"""The universe in testnet/live: resolved at start, re-resolved every `market.universe.refresh_s`.

Each resolution reads exchangeInfo, the 24 h tickers (for a rule) and the leverage brackets
(GET /fapi/v1/leverageBracket), so a fixed list is refreshed too: its brackets, and a symbol
that stopped trading. A symbol is traded only with rules, brackets, the exchange prepared
(isolated margin, leverage capped at its bracket) and a warm feed (the full window of closed
bars, so its signals exist before it may trade). One that leaves gets no new entries (it
leaves the feed, so it has no signal); its rules stay in `rules`, the mapping the position
keeper holds, so an open position stays managed to its exit.

Every change is one `universe_changed` line (added, removed, why) and goes to `listeners`
(the notifier). A refresh that fails (an answer missing or malformed, the rule picking no
symbol, no symbol left to trade) keeps the previous universe, logs `universe_refresh_failed`
and is retried after `RETRY_AFTER_FAILURE_S`; the universe is never emptied by a refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from quantum_trader.clock import ms_from_utc
from quantum_trader.config import Settings
from quantum_trader.domain import MarketRules
from quantum_trader.errors import (
    ConfigurationError,
    MarketDataError,
    OperatorActionRequired,
    RetryLater,
)
from quantum_trader.execution.binance_brackets import ANY, BracketAnswer, with_brackets
from quantum_trader.log import get_logger
from quantum_trader.market.universe import LivePick, explain, pick_live
from quantum_trader.record import record

log = get_logger("market")
RETRY_AFTER_FAILURE_S = 900.0
UNLISTED = "not a USDT perpetual with readable rules in exchangeInfo"
REFRESH_ERRORS = (MarketDataError, RetryLater, ConfigurationError, OperatorActionRequired)


class UniverseExchange(Protocol):
    """What the universe reads from and sets on the exchange (CcxtExchange satisfies it)."""

    @property
    def id_by_symbol(self) -> Mapping[str, str]: ...

    async def load_markets(self, reload: bool = False) -> Mapping[str, MarketRules]: ...

    async def fetch_exchange_info(self) -> dict[str, Any]: ...

    async def fetch_tickers_24h(self) -> list[Any]: ...

    async def fetch_leverage_brackets(self) -> BracketAnswer: ...

    async def prepare_symbol(self, symbol: str, leverage: int) -> None: ...

    def adopt_rules(self, rules: Mapping[str, MarketRules]) -> None: ...


class UniverseFeed(Protocol):
    """The exchange feed's part the universe drives (ExchangeFeed satisfies it)."""

    def set_symbols(self, symbols: Sequence[str]) -> None: ...

    async def warm_up(self, symbols: Sequence[str], now: datetime) -> dict[str, str]: ...


@record
class UniverseChange:
    time: datetime
    added: tuple[str, ...]
    removed: tuple[str, ...]
    why: Mapping[str, str]


@record
class _Target:
    """One resolution: the symbols to trade in order, their rules, and why the others not."""

    chosen: tuple[str, ...]
    rules: Mapping[str, MarketRules]  # every chosen symbol with rules (bracketed when read)
    tradable: tuple[str, ...]
    untradable: Mapping[str, str]
    pick: LivePick


@dataclass(slots=True)
class LiveUniverse:
    """The traded symbols (`symbols`) and the rules of every symbol ever traded (`rules`)."""

    exchange: UniverseExchange
    settings: Settings
    rules: dict[str, MarketRules] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    untradable: dict[str, str] = field(default_factory=dict)
    listeners: list[Callable[[UniverseChange], None]] = field(default_factory=list)
    feed: UniverseFeed | None = None
    next_refresh_ms: int = 0

    async def start(self, now: datetime) -> None:
        """Resolve before trading; errors propagate (the daemon does not start on them). The
        caller prepares the account for `symbols` (`leverage_caps`).

        A brackets answer that cannot be read leaves every symbol untradable (retried after
        `RETRY_AFTER_FAILURE_S`), not the daemon stopped: open positions still need managing.
        """
        target = await self._resolve(now, brackets_required=False)
        self._refuse_unknown_fixed(target)
        self.rules.update(target.rules)
        self.exchange.adopt_rules(target.rules)
        self.symbols, self.untradable = target.tradable, dict(target.untradable)
        self._schedule(now, retry=bool(target.untradable))
        log.info(
            "universe_resolved",
            rule=self.settings.market.universe.rule,
            symbols=list(self.symbols),
            untradable=self.untradable,
            source="exchange",
        )

    async def refresh(self, now: datetime) -> UniverseChange | None:
        """Re-resolve when due; the change, or None (not due, nothing changed, or failed)."""
        if ms_from_utc(now) < self.next_refresh_ms:
            return None
        try:
            target = await self._resolve(now, brackets_required=True)
            change = await self._apply(target, now)
        except REFRESH_ERRORS as error:
            log.warning("universe_refresh_failed", error=str(error), kept=list(self.symbols))
            self._schedule(now, retry=True)
            return None
        self._schedule(now, retry=bool(self.untradable))
        return change

    def leverage_caps(self) -> dict[str, int]:
        """The exchange's leverage ceiling of each traded symbol (its first bracket's)."""
        return {symbol: self.rules[symbol].max_leverage for symbol in self.symbols}

    def health_lines(self) -> list[str]:
        """One line per symbol the universe wants but cannot trade, and why (health)."""
        return [f"{symbol} not traded: {why}" for symbol, why in self.untradable.items()]

    # -- resolution -------------------------------------------------------------------------

    async def _resolve(self, now: datetime, *, brackets_required: bool) -> _Target:
        universe = self.settings.market.universe
        info = await self.exchange.fetch_exchange_info()
        tickers = None if universe.rule == "fixed" else await self.exchange.fetch_tickers_24h()
        pick = pick_live(info, tickers, ms_from_utc(now), universe)
        chosen = pick.chosen if tickers is not None else tuple(self.settings.market.symbols)
        answer = await self._brackets(brackets_required)
        plain = {s: pick.listings[s].rules for s in chosen if s in pick.listings}
        capped, missing = with_brackets(plain, answer, pick.ids, chosen)
        untradable = {s: UNLISTED for s in chosen if s not in pick.listings}
        untradable.update(
            {s: f"status {pick.listings[s].status}, not TRADING" for s in chosen
             if s in pick.listings and pick.listings[s].status not in ("TRADING", "")}
        )  # fmt: skip
        untradable.update({s: why for s, why in missing.items() if s not in untradable})
        if missing and ANY not in answer.problems:  # a whole-answer failure is said once
            log.warning("leverage_brackets_missing", symbols=dict(missing))
        tradable = tuple(s for s in chosen if s in capped and s not in untradable)
        if brackets_required and not tradable:
            raise MarketDataError(f"no symbol of {list(chosen)} can be traded: {untradable}")
        return _Target(chosen, {**plain, **capped}, tradable, untradable, pick)

    async def _brackets(self, required: bool) -> BracketAnswer:
        try:
            return await self.exchange.fetch_leverage_brackets()
        except (MarketDataError, RetryLater) as error:
            if required:
                raise
            log.error("leverage_brackets_unusable", error=str(error))
            return BracketAnswer({}, {ANY: f"leverage brackets unusable: {error}"})

    def _refuse_unknown_fixed(self, target: _Target) -> None:
        unknown = [s for s in target.chosen if s not in target.pick.listings]
        if unknown:
            raise ConfigurationError(
                [f"market.symbols: {s} is not a USDT-settled perpetual on Binance USD-M"
                 for s in unknown]
            )  # fmt: skip

    def _leverage(self, rules: MarketRules) -> int:
        return min(self.settings.sizing.default_leverage, rules.max_leverage)

    # -- applying a refresh -----------------------------------------------------------------

    async def _apply(self, target: _Target, now: datetime) -> UniverseChange | None:
        joining = [s for s in target.tradable if s not in self.symbols]
        refused = await self._admit(joining, target, now)
        tradable = tuple(s for s in target.tradable if s not in refused)
        if not tradable:
            raise MarketDataError(f"no symbol could join: {refused}")
        self.rules.update(target.rules)
        self.exchange.adopt_rules(target.rules)  # the orders' rounding follows them too
        added = tuple(s for s in tradable if s not in self.symbols)
        removed = tuple(s for s in self.symbols if s not in tradable)
        self.symbols = tradable
        self.untradable = {**dict(target.untradable), **refused}
        if self.feed is not None:
            self.feed.set_symbols(tradable)
        if not added and not removed:
            return None
        change = UniverseChange(now, added, removed, self._why(added + removed, target, now))
        log.info(
            "universe_changed",
            added=list(added),
            removed=list(removed),
            why=dict(change.why),
            symbols=list(tradable),
        )
        for listener in self.listeners:
            listener(change)
        return change

    async def _admit(
        self, joining: Sequence[str], target: _Target, now: datetime
    ) -> dict[str, str]:
        """Prepare the exchange and warm the feed for `joining`; why each that failed did."""
        refused: dict[str, str] = {}
        if not joining:
            return refused
        if any(s not in self.exchange.id_by_symbol for s in joining):
            await self.exchange.load_markets(reload=True)
        for symbol in joining:
            try:
                await self.exchange.prepare_symbol(symbol, self._leverage(target.rules[symbol]))
            except REFRESH_ERRORS as error:
                refused[symbol] = f"exchange not prepared: {error}"
        warm = [s for s in joining if s not in refused]
        if self.feed is not None and warm:
            failed = await self.feed.warm_up(warm, now)
            refused.update({s: f"warm-up failed: {why}" for s, why in failed.items()})
        if refused:
            log.warning("universe_symbols_refused", symbols=refused)
        return refused

    def _why(self, symbols: Sequence[str], target: _Target, now: datetime) -> dict[str, str]:
        universe = self.settings.market.universe
        why = {}
        for symbol in symbols:
            if symbol in target.untradable:
                why[symbol] = target.untradable[symbol]
            elif universe.rule == "fixed":
                why[symbol] = "in market.symbols and tradable again"
            else:
                pick = target.pick
                why[symbol] = explain(symbol, pick.volumes, pick.listings, ms_from_utc(now),
                                      universe)  # fmt: skip
        return why

    def _schedule(self, now: datetime, *, retry: bool) -> None:
        refresh_s = self.settings.market.universe.refresh_s
        wait_s = min(refresh_s, RETRY_AFTER_FAILURE_S) if retry else refresh_s
        self.next_refresh_ms = ms_from_utc(now) + round(wait_s * 1000)
