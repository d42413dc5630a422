"""Assemble the report from a finished backtest's database and the run's context."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import ClosedTrade
from quantum_trader.report import benchmark as bench
from quantum_trader.report import halts, statistics
from quantum_trader.report.curve import Curve, drawdown
from quantum_trader.report.load import RunData
from quantum_trader.report.model import BacktestReport, RunContext
from quantum_trader.report.reconcile import reconcile

__all__ = ["RunContext", "build_report"]


def build_report(data: RunData, context: RunContext) -> BacktestReport:
    """Every statistic of the report, computed from `data` (read from the database)."""
    trades = statistics.trade_table(data.trades)
    initial = context.initial_equity_usdt
    final = float(data.equity.values[-1]) if not data.equity.empty else initial
    equity = statistics.equity_statistics(data.equity, initial)
    summary = statistics.trade_statistics(trades)
    errors = reconcile(data.trades, data.fills, data.orders)
    wins = int((trades.pnl > 0).sum())
    risks = [abs(float(t.pnl_usdt) / t.r_multiple) for t in data.trades if t.r_multiple]
    return BacktestReport(
        start=context.start.isoformat(),
        end=context.end.isoformat(),
        symbols=list(context.symbols),
        sample=context.provenance.sample.value,
        signal_source=context.provenance.signal_source,
        provenance=context.provenance.to_dict() | {"summary": context.provenance.describe()},
        sizing_method=context.sizing_method,
        missing_inputs=list(context.missing_inputs),
        initial_equity_usdt=initial,
        final_equity_usdt=round(final, 2),
        return_pct=round((final / initial - 1) * 100, 4),
        trades=len(trades),
        wins=wins,
        losses=len(trades) - wins,
        win_rate=round(wins / len(trades), 4) if len(trades) else 0.0,
        pnl_usdt=_money(sum((t.pnl_usdt for t in data.trades), Decimal(0))),
        fees_usdt=_money(sum((t.fees_usdt for t in data.trades), Decimal(0))),
        funding_usdt=_money(sum((t.funding_usdt for t in data.trades), Decimal(0))),
        sharpe=equity["sharpe"],
        sortino=equity["sortino"],
        calmar=equity["calmar"],
        annual_return_pct=equity["annual_return_pct"],
        volatility_pct=equity["volatility_pct"],
        max_drawdown_pct=float(equity["max_drawdown_pct"] or 0.0),
        profit_factor=summary["profit_factor"],
        expectancy_r=summary["expectancy_r"],
        expectancy_usdt=summary["expectancy_usdt"],
        trade_statistics=summary,
        average_risk_usdt=round(sum(risks) / len(risks), 2) if risks else 0.0,
        average_r=summary["expectancy_r"],
        unknown_r_trades=summary["unknown_r_trades"],
        benchmark=_benchmark(context.benchmark, initial),
        halts=_halts(data, context),
        by_symbol=statistics.group_table(trades, "symbol"),
        by_side=statistics.group_table(trades, "side"),
        by_exit_reason=statistics.group_table(trades, "exit_reason"),
        durations=statistics.durations(trades),
        monthly_returns=statistics.monthly_returns(data.equity, initial),
        exits_by_reason=dict(Counter(str(t.exit_reason) for t in data.trades)),
        position_events_by_reason=data.position_events_by_reason,
        decisions_by_gate=_by_gate(data.decision_counts),
        open_positions=data.open_positions,
        reconciled=not errors,
        reconciliation_errors=errors[:20],
        steps=context.steps,
        candles=context.candles,
        elapsed_s=round(context.elapsed_s, 3),
        candles_per_s=round(context.candles / context.elapsed_s, 1)
        if context.elapsed_s > 0
        else 0.0,
        trade_list=[_trade_dict(t) for t in data.trades],
    )


def _benchmark(line: Curve, initial: float) -> dict[str, Any]:
    if line.empty:
        return {"name": bench.NAME, "return_pct": 0.0, "max_drawdown_pct": 0.0}
    worst = float(-drawdown(line.values).min()) + 0.0  # never -0.0 in report.json
    last = float(line.values[-1])
    return {
        "name": bench.NAME,
        "final_value_usdt": round(last, 2),
        "return_pct": round((last / initial - 1) * 100, 4),
        "max_drawdown_pct": round(worst * 100, 4),
    }


def _halts(data: RunData, context: RunContext) -> dict[str, Any]:
    periods = halts.halt_periods(data.governor_events)
    resets = [e for e in data.governor_events if e["kind"] == "RESET"]
    return {
        "share_not_traded": halts.share_not_traded(periods, context.start, context.end),
        "periods": [p.to_dict(context.end) for p in periods],
        "events": halts.event_rows(data.governor_events),
        "by_breaker": halts.by_breaker(data.governor_events, context.end),
        "operator_resets": [{"time": e["time"], "by": e.get("operator")} for e in resets],
    }


def _by_gate(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (gate, reason), count in sorted(counts.items()):
        out.setdefault(gate, {})[reason] = count
    return out


def _trade_dict(trade: ClosedTrade) -> dict[str, Any]:
    """The trade's fields, Decimal and datetime as text. Read field by field: asdict's deep
    copy of each value (a trade's fields are all plain values) was most of build_report's
    time on the year's 1,850 trades."""
    return {f.name: _text(getattr(trade, f.name)) for f in _TRADE_FIELDS}


_TRADE_FIELDS = fields(ClosedTrade)


def _text(value: object) -> object:
    return str(value) if isinstance(value, Decimal | datetime) else value


def _money(value: Decimal) -> float:
    return float(round(value, 2))
