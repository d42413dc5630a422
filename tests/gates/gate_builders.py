"""Builders for the gates' tests: an account, a market and orders with consistent arithmetic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from quantum_trader.domain import (
    Action,
    Candidate,
    FloatArray,
    GlobalRegime,
    MarketRules,
    MarketView,
    PortfolioView,
    Position,
    Regime,
    Side,
    Signal,
    SizedOrder,
    SymbolStats,
)

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
D = Decimal


def rules(
    symbol: str = "ETH/USDT:USDT",
    *,
    tick: str = "0.01",
    step: str = "0.001",
    min_quantity: str = "0.001",
    min_notional: str = "20",
    max_leverage: int = 125,
) -> MarketRules:
    return MarketRules(symbol, D(tick), D(step), D(min_quantity), D(min_notional), max_leverage)


def position(
    symbol: str,
    side: Side = Side.LONG,
    quantity: str = "1",
    entry: str = "100",
    stop: str | None = None,
    leverage: int = 3,
) -> Position:
    entry_d = D(entry)
    stop_d = D(stop) if stop is not None else entry_d * (1 - D("0.03") * side.sign)
    return Position(
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        entry_price=entry_d,
        leverage=leverage,
        stop_price=stop_d,
        take_profit_price=entry_d * (1 + D("0.06") * side.sign),
        opened_at=NOW,
        entry_order_id=f"entry-{symbol}",
        initial_stop_price=stop_d,
        initial_quantity=D(quantity),
    )


def portfolio(
    *,
    equity: str = "10000",
    free: str | None = None,
    positions: Sequence[Position] = (),
    starting: str | None = None,
    day_start: str | None = None,
    peak: str | None = None,
    losing_streak: int = 0,
    pnl_last_hour: str = "0",
    stats: Mapping[str, SymbolStats] | None = None,
) -> PortfolioView:
    eq = D(equity)
    return PortfolioView(
        equity_usdt=eq,
        wallet_usdt=eq,
        free_usdt=D(free) if free is not None else eq,
        used_margin_usdt=D(0),
        positions={p.symbol: p for p in positions},
        starting_balance_usdt=D(starting) if starting is not None else eq,
        day_start_equity_usdt=D(day_start) if day_start is not None else eq,
        peak_equity_usdt=D(peak) if peak is not None else eq,
        losing_streak=losing_streak,
        pnl_last_hour_usdt=D(pnl_last_hour),
        symbol_stats=dict(stats or {}),
    )


def market(
    symbols: Sequence[str] = ("ETH/USDT:USDT",),
    *,
    market_rules: Mapping[str, MarketRules] | None = None,
    regimes: Mapping[str, Regime] | None = None,
    global_regime: GlobalRegime = GlobalRegime.UPTREND,
    returns: Mapping[str, FloatArray] | None = None,
    now: datetime = NOW,
) -> MarketView:
    return MarketView(
        time=now,
        prices={s: D(100) for s in symbols},
        rules=dict(market_rules) if market_rules is not None else {s: rules(s) for s in symbols},
        atr_pct=dict.fromkeys(symbols, 0.02),
        regimes=dict(regimes or {}),
        global_regime=global_regime,
        returns=dict(returns or {}),
    )


def sized_order(
    *,
    symbol: str = "ETH/USDT:USDT",
    side: Side = Side.LONG,
    quantity: str = "10",
    entry: str = "100",
    stop: str = "97",
    take_profit: str = "106",
    leverage: int = 3,
    expected_loss: str | None = None,
) -> SizedOrder:
    qty, entry_d, stop_d, tp_d = D(quantity), D(entry), D(stop), D(take_profit)
    notional = qty * entry_d
    loss = (entry_d - stop_d) * side.sign * qty
    return SizedOrder(
        symbol=symbol,
        side=side,
        quantity=qty,
        entry_price=entry_d,
        stop_price=stop_d,
        take_profit_price=tp_d,
        leverage=leverage,
        notional_usdt=notional,
        margin_usdt=notional / leverage,
        expected_loss_usdt=D(expected_loss) if expected_loss is not None else loss,
        expected_profit_usdt=(tp_d - entry_d) * side.sign * qty,
        costs_usdt=D(0),
        atr_pct=0.02,
        confidence=0.7,
    )


def candidate(
    symbol: str = "ETH/USDT:USDT",
    side: Side = Side.LONG,
    confidence: float = 0.7,
    regime: Regime = Regime.TRENDING,
) -> Candidate:
    action = Action.BUY if side is Side.LONG else Action.SELL
    return Candidate(Signal(symbol, action, confidence, "test"), side, D(100), 0.02, regime)


def random_returns(seed: int, bars: int = 300, scale: float = 0.01) -> FloatArray:
    return np.random.default_rng(seed).normal(0.0, scale, bars)
