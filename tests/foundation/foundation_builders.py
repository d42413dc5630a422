"""Builders for the foundation's tests: the real core on the bundled sample, in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from quantum_trader.app import (
    Core,
    assemble,
    make_paper_exchange,
)
from quantum_trader.clock import ManualClock
from quantum_trader.config import Settings
from quantum_trader.domain import Order, OrderKind, OrderRequest
from quantum_trader.errors import OrderRejected, OrderStateUnknown, RetryLater
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.market.provider import PrecomputedMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import (
    history_bars,
    open_store,
    recorded_model,
)
from quantum_trader.ports import EntryMarks
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.storage.memory import InMemoryRepository

START = datetime(2025, 9, 12, tzinfo=UTC)
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT")


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings as a user gets them, with the data directory in `tmp_path`."""
    market = {"symbols": SYMBOLS, **overrides.pop("market", {})}
    return Settings(data_dir=tmp_path, market=market, signals={"source": "rules"}, **overrides)


class FaultyExchange:
    """The paper exchange behind the port, counting calls and failing on request.

    `fail_kinds` makes place_order reject those order kinds; `lose_next_answer` makes the next
    place_order reach the exchange but raise OrderStateUnknown, as a timeout would;
    `reads_failing` makes the next that many reads (`fetch_…`) raise RetryLater.
    """

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.fail_kinds: set[OrderKind] = set()
        self.lose_next_answer = False
        self.reads_failing = 0
        self.seen_pending: list[bool] = []
        self.repository: InMemoryRepository | None = None
        # Run just before a request leaves, as if other tasks ran while it was on its way.
        self.while_in_flight: Callable[[OrderRequest], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name.startswith("fetch_") and self.reads_failing > 0:
                self.reads_failing -= 1
                raise RetryLater(f"{name} unreachable (test)")
            return await attribute(*args, **kwargs)

        return counted

    async def place_order(self, request: OrderRequest) -> Order:
        self.calls["place_order"] = self.calls.get("place_order", 0) + 1
        if self.repository is not None:
            known = await self.repository.get_order(request.client_order_id)
            self.seen_pending.append(known is not None and known.status.value == "PENDING")
        if self.while_in_flight is not None:
            await self.while_in_flight(request)
        if request.kind in self.fail_kinds:
            raise OrderRejected(_reason(), f"{request.kind} refused by the test")
        order = await self.inner.place_order(request)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise OrderStateUnknown(request.client_order_id, "answer lost (test)")
        return order


def _reason() -> Any:
    from quantum_trader.domain import ReasonCode

    return ReasonCode.ORDER_REJECTED


@dataclass
class Rig:
    settings: Settings
    clock: ManualClock
    exchange: FaultyExchange
    repository: InMemoryRepository
    core: Core
    feed: ReplayFeed


async def build_rig(
    tmp_path: Path,
    start: datetime = START,
    symbols: Sequence[str] = SYMBOLS,
    entry_marks: EntryMarks | None = None,
    **overrides: Any,
) -> Rig:
    """The daemon's core on the bundled sample with a manual clock and an in-memory database;
    `entry_marks`: the marks entries are sized at, as in testnet/live."""
    settings = settings_for(tmp_path, market={"symbols": tuple(symbols)}, **overrides)
    source = RuleAgent(settings.signals)
    store = open_store(settings)
    feed = ReplayFeed(store, symbols, settings.market.timeframe, history_bars(settings, source))
    rules = default_market_rules(symbols)
    clock = ManualClock(start)
    exchange = FaultyExchange(make_paper_exchange(settings, clock, feed, rules, None))
    repository = InMemoryRepository()
    exchange.repository = repository
    model = recorded_model(settings, store, feed, source, rules)
    market = PrecomputedMarket(model)
    core = await assemble(
        settings, market, exchange, repository, rules, start, asyncio.Event(),
        entry_marks=entry_marks,
    )  # fmt: skip
    return Rig(settings, clock, exchange, repository, core, feed)


def usdt(value: str) -> Decimal:
    return Decimal(value)
