"""Builders for the sizing tests: candidates, accounts and market rules in plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from hypothesis import strategies as st

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import (
    Action,
    Bars,
    Candidate,
    LeverageBracket,
    MarketRules,
    MarketView,
    PortfolioView,
    Position,
    Regime,
    Side,
    Signal,
    SizedOrder,
    SymbolStats,
    Verdict,
)
from quantum_trader.execution.paper_ledger import Ledger
from quantum_trader.execution.paper_markets import PriceTape
from quantum_trader.execution.paper_state import PaperState
from quantum_trader.gates.risk_guard import RiskGuard
from quantum_trader.gates.settings import RiskGuardSettings
from quantum_trader.settings_base import MAX_LEVERAGE
from quantum_trader.sizing.costs import CostModel

SYMBOL = "BTC/USDT:USDT"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BAR_MS = 300_000


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


def brackets(*rows: tuple[int, int]) -> tuple[LeverageBracket, ...]:
    """Leverage brackets from (leverage, notional cap) rows, each floor the previous cap."""
    floors = (0, *(cap for _, cap in rows[:-1]))
    return tuple(
        LeverageBracket(leverage, Decimal(floor), Decimal(cap))
        for (leverage, cap), floor in zip(rows, floors, strict=True)
    )


@st.composite
def bracket_sets(draw: st.DrawFn) -> tuple[LeverageBracket, ...]:
    """One to five brackets with caps up to 10⁹ USDT, their leverage not always falling as
    the notional grows (Binance's does; the sizer must not depend on it)."""
    caps = sorted(set(draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=5))))
    leverages = draw(st.lists(st.integers(1, MAX_LEVERAGE), min_size=len(caps), max_size=len(caps)))
    return brackets(*zip(leverages, caps, strict=True))


def guard_review(order: SizedOrder, market: MarketRules, account: PortfolioView) -> Verdict:
    """The risk guard's verdict on `order`, its leverage limited by the market alone (the
    setting at the most Binance allows) and no minimum balance: the checks after the leverage
    check still apply."""
    guard = RiskGuard(RiskGuardSettings(max_leverage=MAX_LEVERAGE, min_balance_usdt=0))
    symbol = order.symbol
    view = MarketView(T0, {symbol: order.entry_price}, {symbol: market}, {symbol: order.atr_pct})
    return guard.review_order(order, account, view, T0)


def stats(trades: int, wins: int, symbol: str = SYMBOL) -> SymbolStats:
    return SymbolStats(symbol, trades=trades, wins=wins, losses=trades - wins)


def flat_bars(price: Decimal, count: int = 300, symbol: str = SYMBOL) -> Bars:
    """5m bars at one price from T0: a market the paper exchange fills at `price`."""
    prices = np.full(count, float(price), dtype=np.float64)
    return Bars(
        symbol=symbol,
        timeframe_ms=BAR_MS,
        time_ms=ms_from_utc(T0) + BAR_MS * np.arange(count, dtype=np.int64),
        open=prices.copy(),
        high=prices.copy(),
        low=prices.copy(),
        close=prices.copy(),
        volume=np.ones(count, dtype=np.float64),
    )


class FixedAtrTape(PriceTape):
    """A market flat at `price` whose ATR % is the sizer's (`atr_pct`): the paper exchange's
    slippage is then the cost model's at the volatility the sizer priced."""

    def __init__(self, price: Decimal, atr_pct: float, symbol: str = SYMBOL) -> None:
        super().__init__(flat_bars(price, 1, symbol), None)
        self.fixed_atr_pct = atr_pct

    def atr_pct_at(self, now_ms: int) -> float:
        return self.fixed_atr_pct


def paper_loss_at_stop(order: SizedOrder, rules: MarketRules, costs: CostModel) -> Decimal:
    """What `order` loses on the paper exchange entered at its price and stopped out at its
    stop (not gapped through): the fills' own prices (`Ledger.fill_price`, `taker_price`: the
    price on the tick, slippage, rounded against the taker) and the fees charged on them."""
    symbol, quantity, now_ms = order.symbol, order.quantity, ms_from_utc(T0)
    tape = FixedAtrTape(order.entry_price, order.atr_pct, symbol)
    ledger = Ledger(PaperState(Decimal(0), now_ms), {symbol: rules}, {symbol: tape}, costs)
    buy_or_sell, close = order.side.entry_order_side, order.side.exit_order_side
    base = ledger.fill_price(symbol, now_ms)
    entry = ledger.taker_price(symbol, buy_or_sell, base, quantity, now_ms)
    stop = ledger.taker_price(symbol, close, order.stop_price, quantity, now_ms)
    fees = (
        ledger.plan(symbol, buy_or_sell, quantity, entry).fee_usdt
        + ledger.plan(symbol, close, quantity, stop).fee_usdt
    )
    return (entry - stop) * order.side.sign * quantity + fees
