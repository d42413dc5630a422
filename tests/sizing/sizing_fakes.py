"""Builders for the sizing tests: candidates, accounts and market rules in plain values."""

from __future__ import annotations

from decimal import Decimal

from quantum_trader.domain import (
    Action,
    Candidate,
    MarketRules,
    PortfolioView,
    Position,
    Regime,
    Side,
    Signal,
    SymbolStats,
)

SYMBOL = "BTC/USDT:USDT"


def candidate(
    side: Side = Side.LONG,
    price: Decimal = Decimal(100),
    atr_pct: float = 0.02,
    regime: Regime = Regime.CHOPPY,
    confidence: float = 0.7,
    symbol: str = SYMBOL,
) -> Candidate:
    action = Action.BUY if side is Side.LONG else Action.SELL
    return Candidate(Signal(symbol, action, confidence, "test"), side, price, atr_pct, regime)


def portfolio(
    equity: Decimal = Decimal(10_000),
    wallet: Decimal | None = None,
    stats: dict[str, SymbolStats] | None = None,
    positions: dict[str, Position] | None = None,
) -> PortfolioView:
    wallet = equity if wallet is None else wallet
    return PortfolioView(
        equity_usdt=equity,
        wallet_usdt=wallet,
        free_usdt=wallet,
        used_margin_usdt=Decimal(0),
        positions=positions or {},
        starting_balance_usdt=equity,
        day_start_equity_usdt=equity,
        peak_equity_usdt=equity,
        symbol_stats=stats or {},
    )


def rules(
    tick: str = "0.01",
    step: str = "0.001",
    min_quantity: str = "0.001",
    min_notional: str = "5",
    max_leverage: int = 125,
    symbol: str = SYMBOL,
) -> MarketRules:
    return MarketRules(
        symbol,
        Decimal(tick),
        Decimal(step),
        Decimal(min_quantity),
        Decimal(min_notional),
        max_leverage,
    )


def stats(trades: int, wins: int, symbol: str = SYMBOL) -> SymbolStats:
    return SymbolStats(symbol, trades=trades, wins=wins, losses=trades - wins)
