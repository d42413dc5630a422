"""The lifecycle's paper book (SPEC §5.4): a symbol in the PAPER stage trades here, beside the
real book, with no capital. Its orders become virtual positions managed by the same stop maths
as real ones; their closed R multiples are the record that promotes the symbol to DISCOVERY.

Pure apart from persistence by the caller (`to_dict` / `from_dict`). Costs: each closed virtual
trade is charged a taker round trip, so a paper record is no rosier than a real one would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import ExitMode, Position, Side, SizedOrder, TrailMode
from quantum_trader.monitor import stops
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace
from quantum_trader.sizing.lifecycle import LifecycleRecord, window_sharpe

ROLLING = 20


@record
class PaperResult:
    symbol: str
    r_multiple: float
    reason: str


@dataclass(slots=True)
class PaperBook:
    positions: dict[str, Position] = field(default_factory=dict)
    results: dict[str, list[float]] = field(default_factory=dict)

    def open(self, order: SizedOrder, entry_id: str, now: datetime) -> Position:
        """A virtual position at the sized entry price, with its stop and take-profit."""
        position = Position(
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            entry_price=order.entry_price,
            leverage=order.leverage,
            stop_price=order.stop_price,
            take_profit_price=order.take_profit_price,
            opened_at=now,
            entry_order_id=entry_id,
            initial_stop_price=order.stop_price,
            initial_quantity=order.quantity,
            atr_pct=order.atr_pct,
            exit_mode=order.exit_mode,
            highest_price=order.entry_price,
            lowest_price=order.entry_price,
        )
        self.positions[order.symbol] = position
        return position

    def mark(
        self,
        prices: Mapping[str, Decimal],
        now: datetime,
        settings: MonitorSettings,
        round_trip_cost: float,
    ) -> list[PaperResult]:
        """Apply the prices; close the positions whose stop, target or time is reached."""
        closed = []
        for symbol, position in list(self.positions.items()):
            price = prices.get(symbol)
            if price is None:
                continue
            decision = stops.manage_position(
                position,
                price,
                now,
                atr_pct=position.atr_pct,
                trail_mode=stops.base_trail_mode(position.exit_mode, settings),
                regime_turned_choppy=False,
                settings=settings,
            )
            if decision.exit is None:
                self.positions[symbol] = decision.position
                continue
            del self.positions[symbol]
            r = _r_multiple(position, decision.exit.price) - round_trip_cost / _stop_pct(position)
            self.results[symbol] = [*self.results.get(symbol, []), r][-ROLLING:]
            closed.append(PaperResult(symbol, r, decision.exit.reason))
        return closed

    def record(self, symbol: str) -> LifecycleRecord:
        results = self.results.get(symbol, [])
        wins = sum(1 for r in results if r > 0)
        return LifecycleRecord(
            len(results), wins / len(results) if results else 0.0, window_sharpe(results)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": {s: _position_dict(p) for s, p in self.positions.items()},
            "results": self.results,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> PaperBook:
        positions = {s: _position_from(p) for s, p in payload.get("positions", {}).items()}
        results = {str(s): [float(r) for r in rs] for s, rs in payload.get("results", {}).items()}
        return cls(positions, results)


def _stop_pct(position: Position) -> float:
    return float(abs(position.entry_price - position.initial_stop_price) / position.entry_price)


def _r_multiple(position: Position, exit_price: Decimal) -> float:
    risk = abs(position.entry_price - position.initial_stop_price)
    if risk == 0:
        return 0.0
    return float((exit_price - position.entry_price) * position.side.sign / risk)


_FIELDS = (
    "symbol",
    "side",
    "quantity",
    "entry_price",
    "stop_price",
    "take_profit_price",
    "opened_at",
    "entry_order_id",
    "initial_stop_price",
    "atr_pct",
    "exit_mode",
    "trail_mode",
    "break_even_done",
    "trailing_active",
)


def _position_dict(position: Position) -> dict[str, Any]:
    return {name: _plain(getattr(position, name)) for name in _FIELDS}


def _plain(value: object) -> object:
    if isinstance(value, Decimal | datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    return value


def _position_from(data: Mapping[str, Any]) -> Position:
    entry = Decimal(data["entry_price"])
    quantity = Decimal(data["quantity"])
    position = Position(
        symbol=data["symbol"],
        side=Side(data["side"]),
        quantity=quantity,
        entry_price=entry,
        leverage=1,
        stop_price=Decimal(data["stop_price"]),
        take_profit_price=Decimal(data["take_profit_price"]),
        opened_at=datetime.fromisoformat(data["opened_at"]),
        entry_order_id=data["entry_order_id"],
        initial_stop_price=Decimal(data["initial_stop_price"]),
        initial_quantity=quantity,
        atr_pct=float(data["atr_pct"]),
        exit_mode=ExitMode(data["exit_mode"]),
        highest_price=entry,
        lowest_price=entry,
    )
    return replace(
        position,
        trail_mode=TrailMode(data["trail_mode"]),
        break_even_done=bool(data["break_even_done"]),
        trailing_active=bool(data["trailing_active"]),
    )
