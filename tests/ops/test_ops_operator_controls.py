"""Issue 13, operator controls: `pause` / `resume` and `close-all` against the real trading core.

The core is assembled as the daemon assembles it (app.assemble) over the bundled market, the
paper exchange and a real SQLite file; the market port is wrapped so that every cycle offers a
strong BUY on every symbol (confidence 0.95): without a pause the chain lets entries through,
so "nothing opened" is the pause's doing. Requests are filed the way the CLI files them
(`file_request` into the same database file) and carried out by the GovernorKeeper.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from quantum_trader.app import Core, assemble, make_paper_exchange
from quantum_trader.clock import ManualClock
from quantum_trader.config import Settings
from quantum_trader.cycle import CycleSummary
from quantum_trader.domain import (
    Action,
    ExitMode,
    ExitReason,
    GateName,
    ReasonCode,
    Side,
    Signal,
    SizedOrder,
)
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.market.model import MarketState
from quantum_trader.market.provider import PrecomputedMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import history_bars, open_store, recorded_model
from quantum_trader.ops.requests import NAMESPACE, RequestKind, RequestWindow, file_request
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.storage.sqlite import SqliteRepository

START = datetime(2025, 9, 12, tzinfo=UTC)
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT")
STEP = timedelta(minutes=5)


class StrongSignals:
    """The market port with every symbol's signal replaced by a confident BUY."""

    def __init__(self, inner: PrecomputedMarket) -> None:
        self._inner = inner

    async def state(self, now: datetime) -> MarketState:
        state = await self._inner.state(now)
        signals = [Signal(s, Action.BUY, 0.95, "strong") for s in sorted(state.view.prices)]
        return MarketState(state.view, signals)


class WallClock:
    """The daemon's wall clock, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    async def sleep_until(self, deadline: datetime) -> None:
        self.moment = max(self.moment, deadline)


@dataclass
class Desk:
    settings: Settings
    clock: ManualClock
    wall: WallClock
    exchange: PaperExchange
    repository: SqliteRepository
    core: Core
    database: Path

    async def step(self) -> CycleSummary:
        """One bar: the monitor tick (operator requests first, as the daemon runs it), then
        the executor cycle."""
        self.clock.advance(STEP.total_seconds())
        self.wall.moment += timedelta(seconds=1)
        now = self.clock.now()
        await self.core.governor.handle_operator_requests(now)
        await self.core.keeper.tick(now)
        return await self.core.executor.run_cycle(now)

    async def file(self, kind: str, by: str = "desk", at: datetime | None = None) -> None:
        await file_request(self.database, kind, at or self.wall.now(), by)

    async def pending(self) -> dict[str, dict[str, Any]]:
        return await self.repository.load_state(NAMESPACE)


async def open_desk(
    tmp_path: Path, started_at: datetime | None = None, start: datetime = START
) -> Desk:
    settings = Settings(data_dir=tmp_path, market={"symbols": SYMBOLS}, signals={"source": "rules"})
    source = RuleAgent(settings.signals)
    store = open_store(settings)
    feed = ReplayFeed(store, SYMBOLS, settings.market.timeframe, history_bars(settings, source))
    rules = default_market_rules(SYMBOLS)
    clock = ManualClock(start)
    exchange = make_paper_exchange(settings, clock, feed, rules, tmp_path / "paper.json")
    database = tmp_path / "quantum_trader.db"
    repository = await SqliteRepository.open(database)
    model = await asyncio.to_thread(recorded_model, settings, store, feed, source, rules)
    market = StrongSignals(PrecomputedMarket(model))
    core = await assemble(settings, market, exchange, repository, rules, start, asyncio.Event())
    wall = WallClock(started_at or datetime(2026, 1, 1, tzinfo=UTC))
    core.governor.accept_requests(RequestWindow(wall.now(), 300.0), wall)
    return Desk(settings, clock, wall, exchange, repository, core, database)


def opened(summary: CycleSummary) -> int:
    return sum(
        1 for d in summary.decisions if d.verdict.gate is GateName.EXECUTION and d.verdict.approved
    )


def governor_reasons(*summaries: CycleSummary) -> set[str]:
    """The governor's reasons over `summaries`: a cycle whose inputs did not change since an
    earlier one records nothing new (executor.skip_unchanged_cycles), so look at them all."""
    return {
        d.verdict.reason
        for summary in summaries
        for d in summary.decisions
        if d.verdict.gate is GateName.GOVERNOR
    }


async def seed_long(desk: Desk, symbol: str, stop_fraction: str) -> None:
    """A long through the real keeper with its stop `stop_fraction` below the mark and a far
    target, so the stop is what ends it."""
    now = desk.clock.now()
    price = (await desk.exchange.fetch_mark_prices([symbol]))[symbol]
    rules = default_market_rules([symbol])[symbol]
    quantity = rules.round_quantity_down(Decimal(2000) / price)
    stop = rules.round_price(price * (1 - Decimal(stop_fraction)))
    target = rules.round_price(price * Decimal("1.2"))
    order = SizedOrder(
        symbol=symbol, side=Side.LONG, quantity=quantity, entry_price=price, stop_price=stop,
        take_profit_price=target, leverage=3, notional_usdt=quantity * price,
        margin_usdt=quantity * price / 3, expected_loss_usdt=quantity * (price - stop),
        expected_profit_usdt=quantity * (target - price), costs_usdt=Decimal(0), atr_pct=0.01,
        confidence=1.0, exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )  # fmt: skip
    result = await desk.core.keeper.enter(order, now)
    assert result.position is not None


async def test_a_pause_blocks_entries_with_operator_paused_but_a_stop_still_closes(
    tmp_path: Path,
) -> None:
    desk = await open_desk(tmp_path)
    try:
        await seed_long(desk, "BTC/USDT:USDT", "0.002")
        await desk.file(RequestKind.PAUSE)
        summaries = [await desk.step()]
        assert desk.core.governor.governor.state.pause is not None
        for _ in range(288):  # up to a day of bars, until the stop has fired
            if not desk.core.keeper.positions:
                break
            summaries.append(await desk.step())
        trades = await desk.repository.closed_trades()
        assert [t.symbol for t in trades] == ["BTC/USDT:USDT"], "the stop did not close it"
        assert trades[0].exit_reason in (ExitReason.SL_HIT, ExitReason.TRAILING_HIT)
        for _ in range(3):  # flat and paused: strong signals still open nothing
            summaries.append(await desk.step())
        assert sum(opened(s) for s in summaries) == 0
        assert ReasonCode.OPERATOR_PAUSED in set().union(*map(governor_reasons, summaries))
        assert set().union(*map(governor_reasons, summaries)) <= {ReasonCode.OPERATOR_PAUSED}
    finally:
        await desk.repository.close()


async def test_close_all_flattens_and_nothing_reenters_until_resume(tmp_path: Path) -> None:
    desk = await open_desk(tmp_path)
    try:
        for _ in range(12):
            if desk.core.keeper.positions:
                break
            await desk.step()
        assert desk.core.keeper.positions, "strong signals should have opened a position"
        await desk.file(RequestKind.CLOSE_ALL)
        with capture_logs() as logs:
            after = [await desk.step() for _ in range(6)]
        assert not desk.core.keeper.positions
        assert {t.exit_reason for t in await desk.repository.closed_trades()} == {ExitReason.MANUAL}
        assert sum(opened(s) for s in after) == 0
        assert governor_reasons(*after) == {ReasonCode.OPERATOR_PAUSED}
        denials = [e for e in logs if e["event"] == "decision" and e["gate"] == "governor"]
        assert denials
        assert {e["reason"] for e in denials} == {ReasonCode.OPERATOR_PAUSED}
        assert [e["event"] for e in logs if e["event"].startswith("operator_")] == [
            "operator_close_all",
            "operator_paused",
            "operator_request_done",
        ]
        assert await desk.pending() == {}, "a request done must not stay pending"

        await desk.file(RequestKind.RESUME)
        resumed = [await desk.step() for _ in range(6)]
        assert desk.core.governor.governor.state.pause is None
        assert sum(opened(s) for s in resumed) >= 1, "after resume entries open again"
        assert await desk.pending() == {}
    finally:
        await desk.repository.close()


async def test_a_pause_survives_a_restart_until_resume(tmp_path: Path) -> None:
    desk = await open_desk(tmp_path)
    await desk.file(RequestKind.PAUSE)
    await desk.step()
    assert desk.core.governor.governor.state.pause is not None
    await desk.repository.close()

    restarted = desk.wall.now() + timedelta(minutes=1)
    again = await open_desk(tmp_path, started_at=restarted, start=desk.clock.now())
    try:
        assert again.core.governor.governor.state.pause is not None
        held = [await again.step() for _ in range(3)]
        assert sum(opened(s) for s in held) == 0
        assert governor_reasons(*held) == {ReasonCode.OPERATOR_PAUSED}
        await again.file(RequestKind.RESET_HALT)  # reset-halt is not resume
        await again.step()
        assert again.core.governor.governor.state.pause is not None
        await again.file(RequestKind.RESUME)
        resumed = [await again.step() for _ in range(6)]
        assert sum(opened(s) for s in resumed) >= 1
    finally:
        await again.repository.close()


async def test_a_request_filed_before_the_daemon_started_is_dropped_not_done(
    tmp_path: Path,
) -> None:
    desk = await open_desk(tmp_path)
    try:
        for _ in range(12):
            if desk.core.keeper.positions:
                break
            await desk.step()
        assert desk.core.keeper.positions
        before_start = desk.wall.now() - timedelta(hours=30)
        await desk.file(RequestKind.CLOSE_ALL, at=before_start)
        await desk.file(RequestKind.PAUSE)  # after the start, but left 301 s > the max age:
        desk.wall.moment += timedelta(seconds=300)  # the step adds one more second
        with capture_logs() as logs:
            await desk.step()
        dropped = {e["request"]: e for e in logs if e["event"] == "operator_request_dropped"}
        assert dropped["close_all"]["why"] == "filed_before_start"
        assert dropped["pause"]["why"] == "too_old"
        assert not [e for e in logs if e["event"] in ("flattened", "operator_paused")]
        assert desk.core.keeper.positions, "a stale close-all must not flatten"
        assert desk.core.governor.governor.state.pause is None
        assert await desk.pending() == {}
    finally:
        await desk.repository.close()


async def test_pause_twice_and_resume_when_not_paused_change_nothing(tmp_path: Path) -> None:
    desk = await open_desk(tmp_path)
    try:
        await desk.file(RequestKind.RESUME)
        with capture_logs() as logs:
            await desk.step()
        assert "operator_resume_unchanged" in [e["event"] for e in logs]
        await desk.file(RequestKind.PAUSE, by="first")
        await desk.step()
        held = desk.core.governor.governor.state.pause
        assert held is not None
        await desk.file(RequestKind.PAUSE, by="second")
        with capture_logs() as logs:
            await desk.step()
        assert desk.core.governor.governor.state.pause == held  # same start, same reason
        assert "operator_pause_unchanged" in [e["event"] for e in logs]
        await desk.file("no_such_request")
        with capture_logs() as logs:
            await desk.step()
        assert "operator_request_unknown" in [e["event"] for e in logs]
        assert await desk.pending() == {}
    finally:
        await desk.repository.close()
