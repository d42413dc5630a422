"""The backtest report: trades, PnL, win rate, Sharpe, max drawdown, exits by reason, decisions
by gate and reason, and a check that every trade reconciles exactly with its fills."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from quantum_trader.config import Settings
from quantum_trader.domain import ZERO, ClosedTrade, EquitySnapshot, Fill, Order, OrderSide
from quantum_trader.ports import Exchange, Repository


@dataclass(slots=True)
class BacktestReport:
    start: str
    end: str
    symbols: list[str]
    signal_source: str
    sizing_method: str
    initial_equity_usdt: float
    final_equity_usdt: float
    return_pct: float
    trades: int
    wins: int
    losses: int
    win_rate: float
    pnl_usdt: float
    fees_usdt: float
    funding_usdt: float
    sharpe: float
    max_drawdown_pct: float
    average_risk_usdt: float
    average_r: float
    exits_by_reason: dict[str, int]
    position_events_by_reason: dict[str, int]
    decisions_by_gate: dict[str, dict[str, int]]
    open_positions: int
    reconciled: bool
    reconciliation_errors: list[str]
    steps: int
    candles: int
    elapsed_s: float
    candles_per_s: float
    trade_list: list[dict[str, Any]] = field(default_factory=list)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=str))


async def build_report(
    repository: Repository,
    exchange: Exchange,
    settings: Settings,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    steps: int,
    candles: int,
    elapsed_s: float,
    source_name: str,
) -> BacktestReport:
    trades = await repository.closed_trades()
    equity = await repository.equity_history()
    balance = await exchange.fetch_balance()
    errors = reconcile(trades, await repository.fills(), await repository.orders())
    initial = Decimal(repr(settings.exchange.paper_initial_balance_usdt))
    wins = sum(1 for t in trades if t.pnl_usdt > 0)
    risks = [abs(float(t.pnl_usdt) / t.r_multiple) for t in trades if t.r_multiple]
    return BacktestReport(
        start=start.isoformat(),
        end=end.isoformat(),
        symbols=list(symbols),
        signal_source=source_name,
        sizing_method=settings.sizing.method,
        initial_equity_usdt=float(initial),
        final_equity_usdt=_round(balance.equity_usdt),
        return_pct=round(float(balance.equity_usdt / initial - 1) * 100, 4),
        trades=len(trades),
        wins=wins,
        losses=len(trades) - wins,
        win_rate=round(wins / len(trades), 4) if trades else 0.0,
        pnl_usdt=_round(sum((t.pnl_usdt for t in trades), ZERO)),
        fees_usdt=_round(sum((t.fees_usdt for t in trades), ZERO)),
        funding_usdt=_round(sum((t.funding_usdt for t in trades), ZERO)),
        sharpe=round(daily_sharpe(equity), 4),
        max_drawdown_pct=round(max_drawdown(equity) * 100, 4),
        average_risk_usdt=round(sum(risks) / len(risks), 2) if risks else 0.0,
        average_r=round(sum(t.r_multiple for t in trades) / len(trades), 4) if trades else 0.0,
        exits_by_reason=dict(Counter(str(t.exit_reason) for t in trades)),
        position_events_by_reason=dict(
            Counter(str(e.reason) for e in await repository.position_events())
        ),
        decisions_by_gate=_by_gate(await repository.decision_counts()),
        open_positions=len(await repository.open_positions()),
        reconciled=not errors,
        reconciliation_errors=errors[:20],
        steps=steps,
        candles=candles,
        elapsed_s=round(elapsed_s, 3),
        candles_per_s=round(candles / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        trade_list=[_trade_dict(t) for t in trades],
    )


def reconcile(
    trades: Sequence[ClosedTrade], fills: Sequence[Fill], orders: Sequence[Order]
) -> list[str]:
    """Rebuild every round trip from the fills alone and compare it with the recorded trades.

    Per symbol, fills in execution order: from flat, an entry opens a round trip; fills then
    accumulate until the position is flat again. Each rebuilt trip's cash flow minus fees must
    equal its trade's PnL + funding exactly, and every closed trade must have its trip.
    """
    side_of = {o.client_order_id: o.side for o in orders}
    trips = _round_trips(fills)
    errors = []
    for trade in trades:
        trip = trips.pop(trade.entry_order_id, None)
        if trip is None:
            errors.append(f"{trade.symbol} {trade.entry_order_id}: no fills for this trade")
            continue
        cash, fees, closed = trip
        expected = trade.pnl_usdt + trade.funding_usdt
        if not closed or cash - fees != expected or side_of.get(trade.entry_order_id) is None:
            errors.append(
                f"{trade.symbol} {trade.entry_order_id}: "
                f"fills give {cash - fees} (closed={closed}), trade says {expected}"
            )
    errors += [f"closed round trip {k} has no trade" for k, (_, _, done) in trips.items() if done]
    return errors


def _round_trips(fills: Sequence[Fill]) -> dict[str, tuple[Decimal, Decimal, bool]]:
    """entry order id → (cash flow, fees, back to flat) for every round trip in the fills."""
    trips: dict[str, tuple[Decimal, Decimal, bool]] = {}
    by_symbol: dict[str, list[Fill]] = {}
    for fill in fills:
        by_symbol.setdefault(fill.symbol, []).append(fill)
    for symbol_fills in by_symbol.values():
        net, entry = ZERO, ""
        for fill in sorted(symbol_fills, key=_execution_order):
            if net == 0:
                entry = fill.client_order_id
                trips[entry] = (ZERO, ZERO, False)
            net += fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
            cash, fees, _ = trips[entry]
            trips[entry] = (cash + _cash_flow(fill), fees + fill.fee_usdt, net == 0)
    return trips


def _cash_flow(fill: Fill) -> Decimal:
    """USDT received (+) or paid (−) by a fill: summed over a round trip, its gross PnL."""
    value = fill.price * fill.quantity
    return value if fill.side is OrderSide.SELL else -value


def _execution_order(fill: Fill) -> tuple[datetime, int, str]:
    digits = "".join(ch for ch in fill.trade_id if ch.isdigit())
    return fill.time, int(digits) if digits else 0, fill.trade_id


def daily_sharpe(equity: Sequence[EquitySnapshot]) -> float:
    """Annualized Sharpe ratio (√365) of day-end equity returns; 0 with under two days."""
    closes: dict[str, float] = {}
    for snapshot in equity:
        closes[snapshot.time.date().isoformat()] = float(snapshot.equity_usdt)
    values = list(closes.values())
    returns = [b / a - 1 for a, b in itertools.pairwise(values) if a > 0]
    if len(returns) < 2:
        return 0.0
    mean = sum(returns) / len(returns)
    deviation = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / deviation * math.sqrt(365) if deviation > 0 else 0.0


def max_drawdown(equity: Sequence[EquitySnapshot]) -> float:
    peak, worst = 0.0, 0.0
    for snapshot in equity:
        value = float(snapshot.equity_usdt)
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, 1 - value / peak)
    return worst


def _by_gate(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (gate, reason), count in sorted(counts.items()):
        out.setdefault(gate, {})[reason] = count
    return out


def _trade_dict(trade: ClosedTrade) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal | datetime) else v for k, v in asdict(trade).items()}


def _round(value: Decimal) -> float:
    return float(round(value, 2))


def print_backtest_summary(console: Console, report: BacktestReport, path: Path) -> None:
    table = Table(title=f"Backtest {report.start[:10]} → {report.end[:10]}", show_header=False)
    rows = [
        ("symbols", ", ".join(report.symbols)),
        ("signals / sizing", f"{report.signal_source} / {report.sizing_method}"),
        ("equity", f"{report.initial_equity_usdt:,.2f} → {report.final_equity_usdt:,.2f} USDT"),
        ("return", f"{report.return_pct:.2f} %"),
        ("trades (win rate)", f"{report.trades} ({report.win_rate:.1%})"),
        (
            "PnL / fees / funding",
            f"{report.pnl_usdt:,.2f} / {report.fees_usdt:,.2f} / {report.funding_usdt:,.2f}",
        ),
        ("Sharpe / max drawdown", f"{report.sharpe:.2f} / {report.max_drawdown_pct:.2f} %"),
        ("avg risk / avg R", f"{report.average_risk_usdt:,.2f} USDT / {report.average_r:.3f}"),
        ("exits", ", ".join(f"{k} {v}" for k, v in sorted(report.exits_by_reason.items()))),
        (
            "stop moves and partials",
            ", ".join(f"{k} {v}" for k, v in sorted(report.position_events_by_reason.items())),
        ),
        (
            "reconciled with fills",
            "yes" if report.reconciled else f"NO: {report.reconciliation_errors[:3]}",
        ),
        (
            "speed",
            f"{report.candles:,} candles in {report.elapsed_s:.2f} s "
            f"({report.candles_per_s:,.0f}/s)",
        ),
        ("report", str(path)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    decisions = Table(title="Decisions by gate and reason")
    for column in ("gate", "reason", "count"):
        decisions.add_column(column)
    for gate, reasons in report.decisions_by_gate.items():
        for reason, count in reasons.items():
            decisions.add_row(gate, reason, str(count))
    console.print(decisions)
