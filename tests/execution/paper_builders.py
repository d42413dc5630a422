"""Small synthetic markets for the paper exchange tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import Bars, MarketRules, OrderKind, OrderRequest, OrderSide
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.market.replay import FundingSeries
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_MS = ms_from_utc(T0)
BAR_MS = 300_000
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
COSTS = CostModel(CostSettings())
NO_SLIPPAGE = CostModel(
    CostSettings(slippage_small=0.0, slippage_large=0.0, slippage_high_volatility_add=0.0)
)

Row = tuple[float, float, float, float]


def rules_for(symbol: str = BTC) -> MarketRules:
    """Binance-like filters with a minimum quantity above the step, to test each check."""
    return MarketRules(
        symbol=symbol,
        tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"),
        min_quantity=Decimal("0.002"),
        min_notional=Decimal("100"),
        max_leverage=20,
    )


def make_bars(symbol: str, rows: Sequence[Row], start_ms: int = T0_MS) -> Bars:
    """5m bars from (open, high, low, close) rows, the first opening at `start_ms`."""
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    count = data.shape[0]
    return Bars(
        symbol=symbol,
        timeframe_ms=BAR_MS,
        time_ms=start_ms + BAR_MS * np.arange(count, dtype=np.int64),
        open=data[:, 0].copy(),
        high=data[:, 1].copy(),
        low=data[:, 2].copy(),
        close=data[:, 3].copy(),
        volume=np.ones(count, dtype=np.float64),
    )


def flat_rows(price: float, count: int) -> list[Row]:
    return [(price, price, price, price)] * count


def make_funding(times: Sequence[datetime], rates: Sequence[float]) -> FundingSeries:
    return FundingSeries.from_rates(
        np.asarray([ms_from_utc(t) for t in times], dtype=np.int64),
        np.asarray(rates, dtype=np.float64),
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_exchange(
    clock: ManualClock,
    bars: Mapping[str, Bars],
    *,
    funding: Mapping[str, FundingSeries] | None = None,
    balance: str = "10000",
    costs: CostModel = COSTS,
    state_path: Path | None = None,
    before_save: Callable[[], None] | None = None,
) -> PaperExchange:
    return PaperExchange(
        rules={symbol: rules_for(symbol) for symbol in bars},
        costs=costs,
        clock=clock,
        initial_balance_usdt=Decimal(balance),
        bars=bars,
        funding=funding or {},
        state_path=state_path,
        before_save=before_save,
    )


def market(
    client_order_id: str,
    side: OrderSide,
    quantity: str,
    *,
    symbol: str = BTC,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(
        client_order_id, symbol, side, OrderKind.MARKET, Decimal(quantity), None, reduce_only
    )


def conditional(
    client_order_id: str,
    kind: OrderKind,
    side: OrderSide,
    quantity: str,
    trigger: str,
    *,
    symbol: str = BTC,
    reduce_only: bool = True,
) -> OrderRequest:
    return OrderRequest(
        client_order_id,
        symbol,
        side,
        kind,
        Decimal(quantity),
        Decimal(trigger),
        reduce_only,
    )
