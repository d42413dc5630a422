"""The real trading core over the bundled sample, stepped bar by bar on a ManualClock.

Built exactly as `quantum-trader backtest` builds it (app.assemble over a PrecomputedMarket,
the paper exchange, an in-memory repository), but the test owns the loop, so it can look at
the portfolio, the market and the governor between steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.app import Core, assemble, make_paper_exchange
from quantum_trader.app_signals import choose_signal_source
from quantum_trader.clock import ManualClock
from quantum_trader.config import Settings
from quantum_trader.cycle import CycleSummary
from quantum_trader.domain import (
    ExitMode,
    MarketView,
    PortfolioView,
    Position,
    Side,
    SizedOrder,
)
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.gates.governor import GovernorState
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.market.provider import PrecomputedMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import (
    history_bars,
    open_store,
    recorded_model,
)
from quantum_trader.ports import SignalSource
from quantum_trader.storage.memory import InMemoryRepository


@dataclass(frozen=True, slots=True)
class Step:
    """One bar close: what the governor saw and what it became."""

    now: datetime
    portfolio: PortfolioView
    market: MarketView
    before: GovernorState
    after: GovernorState
    summary: CycleSummary
    positions_after: int


@dataclass(slots=True)
class SteppedCore:
    settings: Settings
    clock: ManualClock
    core: Core
    market: PrecomputedMarket
    exchange: PaperExchange
    repository: InMemoryRepository
    step_size: timedelta

    @classmethod
    async def open(
        cls, settings: Settings, start: datetime, source: SignalSource | None = None
    ) -> SteppedCore:
        """Assemble the core at `start` over the bundled sample (settings.market.symbols), or
        the market settings.market.replay_dir names; with `source`, its signals."""
        source = source or choose_signal_source(settings)
        store = open_store(settings)
        symbols = settings.market.symbols
        timeframe = settings.market.timeframe
        feed = ReplayFeed(store, symbols, timeframe, history_bars(settings, source))
        rules = default_market_rules(symbols)
        model = await asyncio.to_thread(recorded_model, settings, store, feed, source, rules)
        clock = ManualClock(start)
        repository = InMemoryRepository()
        exchange = make_paper_exchange(settings, clock, feed, rules, state_path=None)
        market = PrecomputedMarket(model)
        core = await assemble(settings, market, exchange, repository, rules, start, asyncio.Event())
        step = timedelta(milliseconds=TIMEFRAME_MS[timeframe])
        return cls(settings, clock, core, market, exchange, repository, step)

    async def step(self, now: datetime) -> Step:
        """One bar close as the backtest runs it: monitor tick, then the executor cycle.

        The portfolio is read just before the cycle at the same instant; the ledger's
        observation is idempotent for one instant and one balance, so it is the view the
        cycle hands to the governor.
        """
        self.clock.set(now)
        await self.core.keeper.tick(now)
        portfolio = await self.core.executor.portfolio(now)
        market = (await self.market.state(now)).view
        before = self.core.governor.governor.state
        summary = await self.core.executor.run_cycle(now)
        after = self.core.governor.governor.state
        positions = len(self.core.keeper.positions)
        return Step(now, portfolio, market, before, after, summary, positions)

    async def seed_position(
        self, symbol: str, side: Side, notional_usdt: Decimal, stop_fraction: Decimal
    ) -> Position:
        """Open a position through the real trader (entry, protective stop and take-profit)."""
        now = self.clock.now()
        price = (await self.exchange.fetch_mark_prices([symbol]))[symbol]
        rules = default_market_rules([symbol])[symbol]
        quantity = rules.round_quantity_down(notional_usdt / price)
        sign = Decimal(side.sign)
        stop = rules.round_price(price * (1 - sign * stop_fraction))
        target = rules.round_price(price * (1 + sign * 2 * stop_fraction))
        leverage = 3
        order = SizedOrder(
            symbol=symbol,
            side=side,
            quantity=quantity,
            entry_price=price,
            stop_price=stop,
            take_profit_price=target,
            leverage=leverage,
            notional_usdt=quantity * price,
            margin_usdt=quantity * price / leverage,
            expected_loss_usdt=quantity * abs(price - stop),
            expected_profit_usdt=quantity * abs(target - price),
            costs_usdt=Decimal(0),
            atr_pct=0.01,
            confidence=1.0,
            exit_mode=ExitMode.DEFENSIVE_TRAIL,
        )
        result = await self.core.keeper.enter(order, now)
        assert result.position is not None, f"seeded {symbol} did not open"
        return result.position
