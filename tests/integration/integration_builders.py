"""A paper account on a synthetic market, with the repository, ledger and keeper around it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import (
    Bars,
    MarketRules,
    OrderKind,
    OrderRequest,
    OrderSide,
    Position,
    Side,
    SizedOrder,
)
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import ConditionsFn, PositionKeeper
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings
from quantum_trader.storage.memory import InMemoryRepository

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BAR_MS = 300_000
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
NO_SLIPPAGE = CostModel(
    CostSettings(slippage_small=0.0, slippage_large=0.0, slippage_high_volatility_add=0.0)
)


def rules(symbol: str) -> MarketRules:
    return MarketRules(symbol, Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5))


def bars(symbol: str, closes: Sequence[float], lows: Sequence[float] | None = None) -> Bars:
    """5m bars from T0: open = close of the bar before, high = max(open, close)."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.concatenate([close[:1], close[:-1]])
    low = np.minimum(open_, close) if lows is None else np.asarray(lows, dtype=np.float64)
    count = close.shape[0]
    return Bars(
        symbol,
        BAR_MS,
        ms_from_utc(T0) + BAR_MS * np.arange(count, dtype=np.int64),
        open_,
        np.maximum(open_, close),
        low,
        close,
        np.ones(count),
    )


@dataclass
class Account:
    clock: ManualClock
    exchange: PaperExchange
    repository: InMemoryRepository
    keeper: PositionKeeper

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def minutes(self, minutes: float) -> None:
        self.clock.set(T0 + timedelta(minutes=minutes))

    async def restart(self, settings: KeeperSettings | None = None) -> Account:
        """A new ledger and keeper over the same repository and exchange (a process restart)."""
        keeper = await new_keeper(self.exchange, self.repository, self.now, settings)
        return Account(self.clock, self.exchange, self.repository, keeper)

    async def open(
        self, symbol: str, side: Side, quantity: str, stop: str, target: str
    ) -> Position:
        """Enter through the keeper (recorded and protected like the daemon does)."""
        price = (await self.exchange.fetch_mark_prices([symbol]))[symbol]
        sized = SizedOrder(
            symbol=symbol,
            side=side,
            quantity=Decimal(quantity),
            entry_price=price,
            stop_price=Decimal(stop),
            take_profit_price=Decimal(target),
            leverage=3,
            notional_usdt=price * Decimal(quantity),
            margin_usdt=price * Decimal(quantity) / 3,
            expected_loss_usdt=abs(price - Decimal(stop)) * Decimal(quantity),
            expected_profit_usdt=abs(Decimal(target) - price) * Decimal(quantity),
            costs_usdt=Decimal(0),
            atr_pct=0.02,
            confidence=0.8,
        )
        result = await self.keeper.enter(sized, self.now)
        assert result.position is not None
        return result.position

    async def send(
        self,
        client_order_id: str,
        symbol: str,
        side: OrderSide,
        quantity: str,
        kind: OrderKind = OrderKind.MARKET,
        trigger: str | None = None,
        reduce_only: bool = False,
    ) -> None:
        """An order straight to the exchange, behind the program's back."""
        await self.exchange.place_order(
            OrderRequest(
                client_order_id,
                symbol,
                side,
                kind,
                Decimal(quantity),
                None if trigger is None else Decimal(trigger),
                reduce_only or kind.is_conditional,
            )
        )


async def paper_account(btc: Bars, eth: Bars | None = None, at_minutes: float = 10) -> Account:
    clock = ManualClock(T0 + timedelta(minutes=at_minutes))
    market = {BTC: btc, ETH: eth if eth is not None else bars(ETH, [50.0] * len(btc))}
    exchange = PaperExchange(
        rules={symbol: rules(symbol) for symbol in market},
        costs=NO_SLIPPAGE,
        clock=clock,
        initial_balance_usdt=Decimal(10_000),
        bars=market,
        funding={},
    )
    repository = InMemoryRepository()
    keeper = await new_keeper(exchange, repository, clock.now())
    return Account(clock, exchange, repository, keeper)


async def new_keeper(
    exchange: PaperExchange,
    repository: InMemoryRepository,
    now: datetime,
    settings: KeeperSettings | None = None,
    conditions: ConditionsFn = lambda: (False, {}),
) -> PositionKeeper:
    """A keeper as the composition root builds one, over a ledger restored from `repository`
    (`conditions`: the market conditions it reads; none by default)."""
    ledger = await Ledger.load(repository, Decimal(10_000), now, PerformanceSettings())
    return await PositionKeeper.load(
        exchange,
        repository,
        ledger,
        {symbol: rules(symbol) for symbol in (BTC, ETH)},
        settings or KeeperSettings(),
        MonitorSettings(),
        conditions=conditions,
    )
