"""The paper exchange: the Exchange port over recorded prices, for paper runs and backtests.

Every call first catches the account up to `clock.now()` (conditional-order triggers and
funding on the bars that closed since the last call), then answers. One-way mode, isolated
margin, taker fills with the cost model's fee and slippage (SPEC §5.5). Conditional orders
(reduce-only STOP_MARKET / TAKE_PROFIT_MARKET) live in their own book, as on Binance's Algo
Order API. With `state_path`, the whole account is rewritten atomically after every change and
reloaded on construction, so protective stops survive a kill -9 of the daemon; as it catches
up, at most once a simulated hour, it forgets what Binance itself no longer returns
(paper_retention.py), so the file stays bounded. A backtest (no `state_path`) prunes nothing:
it saves no file, and so every answer it asks for stays what it was.

Not modelled: liquidation (positions are expected to carry a stop), maker fills, partial fills.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from quantum_trader.atomic_file import open_directory
from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import (
    Balance,
    Bars,
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderRequest,
    SnapshotSource,
)
from quantum_trader.errors import MarketDataError, OperatorActionRequired
from quantum_trader.execution.paper_ledger import Ledger
from quantum_trader.execution.paper_markets import PriceTape, default_market_rules
from quantum_trader.execution.paper_orders import cancel_conditional, place, set_leverage
from quantum_trader.execution.paper_retention import PRUNE_EVERY_MS, prune
from quantum_trader.execution.paper_state import PaperState, load_state, save_state
from quantum_trader.execution.paper_triggers import CatchUp, ConditionalBook
from quantum_trader.log import get_logger
from quantum_trader.market.replay import FundingSeries
from quantum_trader.ports import Clock
from quantum_trader.record import record
from quantum_trader.sizing.costs import CostModel

__all__ = ["PaperExchange", "PaperTotals", "QuietView", "default_market_rules"]
log = get_logger("paper_exchange")


@record
class PaperTotals:
    """Lifetime account totals in USDT: wallet = initial + realized − fees − funding."""

    wallet_usdt: Decimal
    realized_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal


@record
class QuietView:
    """The account as the exchange would answer at an instant nothing falls due; its balance
    is `PaperExchange.balance_at(marks)`."""

    snapshot: ExchangeSnapshot
    marks: dict[str, Decimal]


class PaperExchange:
    """A simulated Binance USD-M account (see the module docstring)."""

    def __init__(
        self,
        *,
        rules: Mapping[str, MarketRules],
        costs: CostModel,
        clock: Clock,
        initial_balance_usdt: Decimal,
        bars: Mapping[str, Bars],
        funding: Mapping[str, FundingSeries],
        state_path: Path | None = None,
        order_latency_s: float = 0.0,
        before_save: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        # Raises (StorageFailed) when `state_path`'s directory is no longer the one the
        # daemon holds: the account is never saved into another (ops/data_dir.py).
        self._before_save = before_save
        self._synced: tuple[datetime, int] | None = None  # the last instant synced, in ms
        self._state_path = state_path
        # The directory as it was opened: a save never lands in another directory moved or
        # made in its place between the check before it and the write (ops/data_dir.py).
        self._directory: int | None = None
        if state_path is not None:
            self._directory = open_directory(state_path.parent)
            weakref.finalize(self, os.close, self._directory)
        self._pruned_at_ms: int | None = None  # the account's time of the last pruning
        self._order_latency_s = order_latency_s
        self._rules = {symbol: rules[symbol] for symbol in bars if symbol in rules}
        tapes = {s: PriceTape(bars[s], funding.get(s)) for s in self._rules}
        state = load_state(state_path) if state_path is not None else None
        fresh = state is None
        if state is not None:
            _check_symbols(state, self._rules, state_path)
        if state is None:
            state = PaperState(wallet_usdt=initial_balance_usdt, last_ms=self._now_ms())
        self._ledger = Ledger(state, self._rules, tapes, costs)
        self._book = ConditionalBook(state)
        self._catch_up = CatchUp(self._ledger, self._book)
        # `_listed` as last made, with the book's version then.
        self._listed_at: tuple[int, Mapping[str, Sequence[Order]]] | None = None
        # The held symbols and their marks at each step `quiet_window` last priced, by ms: a
        # stretch cut short asks for its later steps again (`quiet_marks`, the next window),
        # and a mark costs ≈ 20,000 instructions; the tapes never change.
        self._window: tuple[tuple[str, ...], dict[int, dict[str, Decimal]]] = ((), {})
        if fresh:
            self._persist()

    @property
    def totals(self) -> PaperTotals:
        """Lifetime totals as of now (catches up first, like every public call)."""
        self._sync()
        state = self._ledger.state
        return PaperTotals(
            state.wallet_usdt, state.realized_pnl_usdt, state.fees_usdt, state.funding_usdt
        )

    @property
    def revision(self) -> tuple[Decimal, int, int]:
        """Moves with every order, fill and funding payment (equal: the same account)."""
        state = self._ledger.state
        return state.wallet_usdt, state.next_order_no, state.next_trade_no

    @property
    def idle(self) -> bool:
        """No position and no open order: then only an order of ours changes the account."""
        return not self._ledger.state.positions and self._book.empty

    def quiet_marks(
        self, now_ms: int
    ) -> tuple[dict[str, Decimal], Mapping[str, Sequence[Order]]] | None:
        """What the held symbols' `fetch_mark_prices` and the open conditional orders by
        symbol would answer at `now_ms` (`_quiet_marks`); `fetch_balance`'s answer then is
        `balance_at` the marks (asked only where it is read)."""
        marks = self._quiet_marks(now_ms)
        if marks is None:
            return None
        return marks, self._listed()

    def quiet_window(
        self, steps_ms: Sequence[int]
    ) -> tuple[list[dict[str, Decimal]], Mapping[str, Sequence[Order]]] | None:
        """What `quiet_marks` would answer at each of `steps_ms` (ascending) but the balance:
        the held symbols' marks at each, and the open conditional orders by symbol, when
        catching up through the last of them changes nothing; None otherwise."""
        if not steps_ms or not self._catch_up.quiet_through(steps_ms[-1]):
            return None
        marks = []
        for step_ms in steps_ms:
            held = self._held_marks(step_ms)
            if held is None:
                return None
            marks.append(held)
        self._window = tuple(self._ledger.state.positions), dict(zip(steps_ms, marks, strict=True))
        return marks, self._listed()

    def balance_at(self, marks: Mapping[str, Decimal]) -> Balance:
        """What `fetch_balance` would answer with each open position at its symbol's mark in
        `marks`, nothing falling due (after `quiet_marks`, `quiet_view` or `quiet_window`):
        the marks are the instant's valuation prices (`Ledger.fill_price`)."""
        return self._ledger.balance_at(marks)

    def quiet_view(self, now: datetime, now_ms: int) -> QuietView | None:
        """What `fetch_positions`, `fetch_open_conditional_orders` and the held symbols'
        `fetch_mark_prices` would answer at `now` (`now_ms` in ms; `_quiet_marks`), and so
        `fetch_balance` (`balance_at` the marks)."""
        marks = self._quiet_marks(now_ms)
        if marks is None:
            return None
        held = {p.symbol: p for p in self._ledger.positions(now_ms)}
        snapshot = ExchangeSnapshot(now, SnapshotSource.REST, held, tuple(self._book.orders()))
        return QuietView(snapshot, marks)

    def _quiet_marks(self, now_ms: int) -> dict[str, Decimal] | None:
        """The held symbols' marks at `now_ms` when catching up to it changes nothing (no
        trigger, no funding due), without catching up; None otherwise, or when a held symbol
        has no price then (a backtest repeats quiet steps: replay_quiet.py)."""
        if not self._catch_up.quiet_through(now_ms):
            return None
        return self._held_marks(now_ms)

    def _held_marks(self, now_ms: int) -> dict[str, Decimal] | None:
        """The held symbols' marks at `now_ms`; None when one has no price then. Read-only:
        those of `quiet_window`'s steps are kept and handed out again."""
        held, window = self._window
        marks = window.get(now_ms)
        if marks is not None and held == tuple(self._ledger.state.positions):
            return marks
        try:
            return {s: self._ledger.fill_price(s, now_ms) for s in self._ledger.state.positions}
        except MarketDataError:
            return None

    def _listed(self) -> Mapping[str, Sequence[Order]]:
        """The open conditional orders, by symbol; read-only, made again only when the book
        changes (asked at every step a backtest checks)."""
        book, listed = self._book, self._listed_at
        if listed is None or listed[0] != book.version:
            by_symbol = {symbol: tuple(book.orders(symbol)) for symbol in book.symbols()}
            listed = self._listed_at = (book.version, by_symbol)
        return listed[1]

    async def load_markets(self) -> Mapping[str, MarketRules]:
        self._sync()
        return dict(self._rules)

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The recorded price at now for each symbol; MarketDataError for an unknown one.

        A symbol inside a gap in its data has no price now and is left out (untradeable)."""
        now_ms = self._sync()
        unknown = [symbol for symbol in symbols if symbol not in self._rules]
        if unknown:
            raise MarketDataError(f"unknown symbols: {', '.join(unknown)}")
        prices = {}
        for symbol in symbols:
            try:
                prices[symbol] = self._ledger.fill_price(symbol, now_ms)
            except MarketDataError as error:
                log.warning("mark_price_unavailable", symbol=symbol, reason=str(error))
        return prices

    async def fetch_balance(self) -> Balance:
        return self._ledger.balance(self._sync())

    async def fetch_positions(self) -> list[ExchangePosition]:
        return self._ledger.positions(self._sync())

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        self._sync()
        set_leverage(self._ledger, symbol, leverage)
        self._persist()

    async def place_order(self, request: OrderRequest) -> Order:
        """Fill a market order now, or book a conditional one. Raises OrderRejected.

        With `order_latency_s`, the request first spends that long on the way, as on a network:
        the order is in flight (PENDING in our database) for that time.
        """
        if self._order_latency_s > 0:
            await asyncio.sleep(self._order_latency_s)
        now_ms = self._sync()
        order = place(self._ledger, self._book, request, now_ms)
        self._persist()
        return order

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        self._sync()
        order = self._ledger.state.orders.get(client_order_id)
        return order if order is not None and order.symbol == symbol else None

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        self._sync()
        return self._book.orders(symbol)

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel an open conditional order; OrderRejected if unknown or no longer open."""
        now_ms = self._sync()
        cancel_conditional(self._ledger, self._book, symbol, client_order_id, now_ms)
        self._persist()

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        self._sync()
        fills = self._ledger.state.fills.get(client_order_id, [])
        return [fill for fill in fills if fill.symbol == symbol]

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        self._sync()
        if symbol not in self._rules:
            raise MarketDataError(f"unknown symbol {symbol!r}")
        fills = [
            fill
            for by_order in self._ledger.state.fills.values()
            for fill in by_order
            if fill.symbol == symbol and start <= fill.time <= end
        ]
        return sorted(fills, key=lambda fill: fill.time)

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        """None: the paper exchange neither liquidates nor deleverages."""
        return {}

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        """Funding paid on `symbol` at settlements since `since` (negative = received)."""
        self._sync()
        if symbol not in self._rules:
            raise MarketDataError(f"unknown symbol {symbol!r}")
        return self._ledger.funding_paid(symbol, ms_from_utc(since))

    async def close(self) -> None:
        self._persist()

    def _now_ms(self) -> int:
        return ms_from_utc(self._clock.now())

    def _sync(self) -> int:
        """Catch the account up to the clock's now; return now in ms.

        A step calls several methods at one instant: once that instant is caught up, the
        account cannot have fallen behind it (only a later instant adds due bars)."""
        now = self._clock.now()
        synced = self._synced
        if synced is not None and synced[0] == now:
            return synced[1]
        now_ms = ms_from_utc(now)
        changed = self._catch_up.run(now_ms)
        if self._prune_due():
            changed |= bool(prune(self._ledger.state, self._ledger.state.last_ms))
        if changed:
            self._persist()
        self._synced = (now, now_ms)
        return now_ms

    def _prune_due(self) -> bool:
        """Whether to prune now: with a state file, once a simulated hour (the account's own
        time, `last_ms`; the first call after loading prunes)."""
        if self._state_path is None:
            return False
        last, now_ms = self._pruned_at_ms, self._ledger.state.last_ms
        if last is not None and now_ms - last < PRUNE_EVERY_MS:
            return False
        self._pruned_at_ms = now_ms
        return True

    def _persist(self) -> None:
        if self._state_path is not None:
            if self._before_save is not None:
                self._before_save()
            save_state(self._state_path, self._ledger.state, self._directory)


def _check_symbols(state: PaperState, rules: Mapping[str, MarketRules], path: Path | None) -> None:
    """A saved account must only hold symbols this exchange still has prices for (the start's
    checks, paper_account_checks.py, say it first, naming the setting: this is the backstop)."""
    held = state.symbols_held()
    missing = sorted(held - set(rules))
    if missing:
        raise OperatorActionRequired(
            f"paper account {path} holds positions or stops on {', '.join(missing)}, which this "
            "run has no recorded candles or market rules of: list them in market.symbols and "
            "point market.replay_dir at data that records them, so that the daemon manages "
            "them to their exit; or stop it and move paper_exchange.json aside together with "
            "quantum_trader.db (and its -wal and -shm files) to start afresh"
        )
