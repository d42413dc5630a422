"""What the status server shows, read from the runtime in ONE place.

`RuntimeView` is the only code of the operations side that reaches into the trading core
(the position keeper's view, the governor's state, the balancer's latest output, the ledger's
closed-trade hook). Everything it hands out is a frozen value (`StatusSnapshot`).

Exchange reads (balance, mark prices) are cached for `server.exchange_read_interval_s`, so a
page polling /status every two seconds costs the exchange account at most one read of each
per interval; mark prices come from the mark-price stream when it is usable (no weight).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.app import Runtime
from quantum_trader.domain import Balance, ClosedTrade, Position, Side
from quantum_trader.errors import QuantumTraderError
from quantum_trader.gates.governor import GovernorState, Trip
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.log import get_logger
from quantum_trader.ops.health import HealthReport
from quantum_trader.ops.metrics import StreamState
from quantum_trader.record import record

log = get_logger("status")
ONE = Decimal(1)


@record
class PositionStatus:
    """An open position with its futures basics. `liquidation_price` is an estimate (isolated
    margin, one maintenance rate); mark and unrealized PnL are None before the first read."""

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl_usdt: Decimal | None
    leverage: int
    margin_usdt: Decimal
    liquidation_price: Decimal
    stop_price: Decimal
    take_profit_price: Decimal
    opened_at: datetime
    protected: bool


@record
class CycleStatus:
    cycle_id: str
    time: datetime
    duration_ms: float
    signals: int
    candidates: int
    approved: int
    opened: int


@record
class DecisionStatus:
    time: datetime
    symbol: str
    gate: str
    approved: bool
    reason: str
    detail: str
    confidence: float


@record
class ExchangeRead:
    """How old the account and the marks on /status are: when each was last read from the
    exchange (trading clock; None before the first read), and the error class of the latest
    read when it failed — the figures shown are then the last ones read, as of those times."""

    balance_as_of: datetime | None = None
    marks_as_of: datetime | None = None
    failed: str | None = None
    # A read sent then and not answered yet (a slow or hanging exchange): /status did not wait
    # for it beyond `server.exchange_read_wait_s`.
    pending_since: datetime | None = None


@record
class StatusSnapshot:
    """The whole of /status. Times are the trading clock's (simulated in a replay)."""

    time: datetime
    mode: str
    market_source: str
    replay_end: datetime | None
    replay_finished: bool
    trading_state: str
    governor: GovernorState
    why: tuple[str, ...]
    health: HealthReport
    account: Balance | None
    positions: tuple[PositionStatus, ...]
    last_cycle: CycleStatus | None
    balancer: Mapping[str, Any] | None
    recent_decisions: tuple[DecisionStatus, ...]
    equity_curve: tuple[tuple[datetime, Decimal], ...]
    streams: tuple[StreamState, ...]
    notifications: Mapping[str, int] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    exchange_read: ExchangeRead = field(default_factory=ExchangeRead)


def liquidation_price(
    side: Side, entry_price: Decimal, leverage: int, maintenance_rate: Decimal
) -> Decimal:
    """Isolated-margin liquidation price of a lone position (Binance's formula with no
    maintenance amount): long entry·(1 − 1/L)/(1 − mmr), short entry·(1 + 1/L)/(1 + mmr)."""
    inverse = ONE / Decimal(leverage)
    if side is Side.LONG:
        return entry_price * (ONE - inverse) / (ONE - maintenance_rate)
    return entry_price * (ONE + inverse) / (ONE + maintenance_rate)


def position_status(
    position: Position, mark: Decimal | None, maintenance_rate: Decimal
) -> PositionStatus:
    """A ledger position with its mark, unrealized PnL, isolated margin and liquidation price."""
    return PositionStatus(
        symbol=position.symbol,
        side=position.side,
        quantity=position.quantity,
        entry_price=position.entry_price,
        mark_price=mark,
        unrealized_pnl_usdt=None if mark is None else position.unrealized_pnl(mark),
        leverage=position.leverage,
        margin_usdt=position.notional_usdt / Decimal(position.leverage),
        liquidation_price=liquidation_price(
            position.side, position.entry_price, position.leverage, maintenance_rate
        ),
        stop_price=position.stop_price,
        take_profit_price=position.take_profit_price,
        opened_at=position.opened_at,
        protected=position.stop_order_id is not None,
    )


def why_not_active(
    governor: GovernorState,
    health: HealthReport,
    replay_finished: bool,
    blocked: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Why entries are limited, one line per reason; empty when trading normally. `blocked`:
    the symbols the keeper takes no entry on, and why (an order of ours not yet settled)."""
    held = governor.pause
    reasons = [] if held is None else [pause_line(held)]
    reasons += [
        f"{trip.breaker}: {trip.decision}"
        + (f" until {trip.until.isoformat()}" if trip.until else "")
        + (f" ({trip.detail})" if trip.detail else "")
        for trip in governor.trips
        if trip is not held
    ]
    if health.status == "CRITICAL":
        reasons.append("health CRITICAL: " + "; ".join(health.problems))
    if replay_finished:
        reasons.append("the recorded market has ended: nothing new to trade")
    reasons += [
        f"no entry on {symbol} until the keeper settles it: {why}"
        for symbol, why in sorted((blocked or {}).items())
    ]
    return tuple(reasons)


def pause_line(held: Trip) -> str:
    """The operator's pause for a person: since when, who and why, and how it ends."""
    return (
        f"PAUSED since {held.since.isoformat()} ({held.detail}): no new "
        "entries, open positions still managed; `quantum-trader resume` ends it"
    )


class RuntimeView:
    """Read-only access to the trading core for the operations side (see the module doc)."""

    def __init__(
        self,
        runtime: Runtime,
        read_interval_s: float,
        maintenance_rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        read_wait_s: float = 2.0,
    ) -> None:
        self._runtime = runtime
        self._read_interval_s = read_interval_s
        self._read_wait_s = read_wait_s
        self._reading: asyncio.Task[None] | None = None  # one exchange read at a time
        self._reading_since: datetime | None = None
        self._maintenance_rate = Decimal(repr(maintenance_rate))
        self._monotonic = monotonic
        self._read_at: float | None = None
        self._balance: Balance | None = None
        self._marks: dict[str, Decimal] = {}
        self._balance_at: datetime | None = None
        self._marks_at: datetime | None = None
        self._failed: str | None = None

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def positions(self) -> Mapping[str, Position]:
        return dict(self._runtime.core.keeper.view().positions)

    def blocked(self) -> Mapping[str, str]:
        """Symbols the keeper takes no entry on until an order of ours is settled, and why."""
        return self._runtime.core.keeper.blocked_symbols()

    def governor_state(self) -> GovernorState:
        return self._runtime.core.governor.governor.state

    def balancer_output(self) -> Mapping[str, Any] | None:
        latest = self._runtime.core.balancer.latest
        return None if latest is None else latest.to_dict()

    def on_trade_closed(self, listener: Callable[[ClosedTrade], Awaitable[None]]) -> None:
        """Call `listener` with every round trip the core books."""
        self._runtime.core.ledger.trade_listeners.append(listener)

    def on_protection_alert(self, listener: Callable[[ProtectionAlert], None]) -> None:
        """Call `listener` with every position the keeper could not protect as planned."""
        self._runtime.core.keeper.alert_listeners.append(listener)

    def note_balance(self, balance: Balance) -> None:
        """A balance someone else just read (the heartbeat's): no need to read it again."""
        self._balance = balance
        self._balance_at = self._runtime.clock.now()

    async def account(self) -> tuple[Balance | None, dict[str, Decimal]]:
        """The balance and the marks of the open positions, read at most once per interval
        (sooner only when a position opened since the last read). A read the exchange does
        not answer within `read_wait_s` goes on without the caller, who gets the last
        figures read (`exchange_read` says so): a hanging exchange held /status for the
        client's timeouts and retries, ≈ 32 s."""
        now_s = self._monotonic()
        symbols = sorted(self.positions())
        fresh = self._read_at is not None and now_s - self._read_at < self._read_interval_s
        if fresh and set(symbols) <= set(self._marks):  # a new position needs its mark now
            return self._balance, self._marks
        if self._reading is None:
            self._read_at = now_s
            self._reading_since = self._runtime.clock.now()
            self._reading = asyncio.create_task(self._read(symbols, self._reading_since))
            self._reading.add_done_callback(self._read_done)
        try:
            async with asyncio.timeout(self._read_wait_s):
                await asyncio.shield(self._reading)
        except TimeoutError:
            pass  # the figures of the last read, as of its times
        return self._balance, self._marks

    async def _read(self, symbols: list[str], now: datetime) -> None:
        exchange = self._runtime.exchange
        streamed, stale = self._streamed_marks(symbols, now)
        try:
            self._balance = await exchange.fetch_balance()
            self._balance_at = now
            # The mark-price stream costs no request weight: REST reads only its stale marks.
            read = await exchange.fetch_mark_prices(stale) if stale else {}
            self._marks = {**streamed, **read}
            self._marks_at = now
            self._failed = None
        except QuantumTraderError as error:
            self._failed = type(error).__name__
            log.warning("status_exchange_read_failed", error=self._failed)

    def _read_done(self, task: asyncio.Task[None]) -> None:
        self._reading = self._reading_since = None
        if not task.cancelled() and task.exception() is not None:
            # Not the exchange's answer but a fault of ours; whoever waited has seen it.
            log.error("status_exchange_read_crashed", error=repr(task.exception()))

    async def close(self) -> None:
        """Stop a read still waiting for the exchange (the daemon is stopping)."""
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    def exchange_read(self) -> ExchangeRead:
        """When the balance and the marks `account` returns were read, whether its latest
        read failed (then they are older than the interval), and since when a read has been
        waiting for the exchange."""
        return ExchangeRead(self._balance_at, self._marks_at, self._failed, self._reading_since)

    async def marks(self) -> dict[str, Decimal]:
        """Mark prices of the open positions: the last read when still fresh, else the
        mark-price stream's fresh marks and a read of the exchange for the others (no balance
        read); those alone on failure."""
        symbols = sorted(self.positions())
        fresh = self._read_at is not None and (
            self._monotonic() - self._read_at < self._read_interval_s
        )
        if fresh and set(symbols) <= set(self._marks):
            return {symbol: self._marks[symbol] for symbol in symbols}
        streamed, stale = self._streamed_marks(symbols, self._runtime.clock.now())
        if not stale:
            return streamed
        try:
            return {**streamed, **await self._runtime.exchange.fetch_mark_prices(stale)}
        except QuantumTraderError as error:
            log.warning("status_exchange_read_failed", error=type(error).__name__)
            return streamed

    def _streamed_marks(
        self, symbols: Sequence[str], now: datetime
    ) -> tuple[dict[str, Decimal], list[str]]:
        """The fresh marks of `symbols` the mark-price stream has, and the others (stale)."""
        streams = self._runtime.streams
        streamed = dict((streams.mark_prices(symbols, now) if streams else None) or {})
        return streamed, [symbol for symbol in symbols if symbol not in streamed]

    async def position_statuses(self) -> tuple[PositionStatus, ...]:
        _, marks = await self.account()
        return tuple(
            position_status(p, marks.get(symbol), self._maintenance_rate)
            for symbol, p in sorted(self.positions().items())
        )


def snapshot_json(snapshot: StatusSnapshot) -> dict[str, Any]:
    """/status as JSON-ready data: Decimals as strings, times as ISO-8601."""
    governor = snapshot.governor
    return {
        "time": snapshot.time.isoformat(),
        "mode": snapshot.mode,
        "market_source": snapshot.market_source,
        "replay": {
            "end": _iso(snapshot.replay_end),
            "finished": snapshot.replay_finished,
        },
        "trading": {
            "state": snapshot.trading_state,
            "paused": None
            if governor.pause is None
            else {"since": governor.pause.since.isoformat(), "detail": governor.pause.detail},
            "why": list(snapshot.why),
        },
        "governor": {
            "state": governor.trading_state,
            "decision": governor.decision,
            "until": _iso(governor.until),
            "trips": [trip.to_dict() for trip in governor.trips],
        },
        "health": {"status": snapshot.health.status, "problems": list(snapshot.health.problems)},
        "account": _balance_json(snapshot.account),
        "exchange_read": plain_fields(snapshot.exchange_read),
        "positions": [plain_fields(p) for p in snapshot.positions],
        "blocked_symbols": dict(snapshot.blocked),
        "last_cycle": None if snapshot.last_cycle is None else plain_fields(snapshot.last_cycle),
        "balancer": snapshot.balancer,
        "recent_decisions": [plain_fields(d) for d in snapshot.recent_decisions],
        "equity_curve": [[t.isoformat(), str(e)] for t, e in snapshot.equity_curve],
        "streams": [plain_fields(s) for s in snapshot.streams],
        "notifications": dict(snapshot.notifications),
    }


def _balance_json(balance: Balance | None) -> dict[str, str] | None:
    if balance is None:
        return None
    return {
        "equity_usdt": str(balance.equity_usdt),
        "wallet_usdt": str(balance.wallet_usdt),
        "free_usdt": str(balance.free_usdt),
        "used_margin_usdt": str(balance.used_margin_usdt),
        "unrealized_pnl_usdt": str(balance.unrealized_pnl_usdt),
    }


def plain_fields(value: Any) -> dict[str, Any]:
    """A slotted dataclass as JSON-ready fields: Decimals as strings, times as ISO-8601."""
    return {name: _scalar(getattr(value, name)) for name in value.__slots__}


def _scalar(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("1e-8")).normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
