"""Entries sized at the mark in testnet/live (ports.EntryMarks, market/live_marks.py).

The market view prices a symbol at its last closed bar's close, minutes old on 5 m bars and
up to an hour on 1 h ones. An outside probe (2026-12-06, its own Binance stand-in, 1 h bars)
saw entries planned around such a close fill past their own target or stop and be exited at
once, cycle after cycle, and others risk 1.7–2.9 times the approved amount. The executor now
prices an approved candidate at the mark before sizing it, where it has marks to read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from foundation_builders import build_rig
from structlog.testing import capture_logs

from quantum_trader.domain import Decision, GateName
from quantum_trader.errors import RetryLater
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.market.live_marks import LiveMarks

STEP = timedelta(minutes=5)
AWAY = Decimal("1.004")  # the mark 0.4 % above where the paper exchange prices the symbol


class MarksAway:
    """Marks 0.4 % above the paper exchange's price: a market that moved since the bar."""

    def __init__(self) -> None:
        self.exchange: PaperExchange | None = None
        self.asked: list[str] = []

    async def mark(self, symbol: str, now: datetime) -> Decimal | None:
        assert self.exchange is not None
        self.asked.append(symbol)
        price = (await self.exchange.fetch_mark_prices([symbol]))[symbol]
        return price * AWAY


def sizer_details(decisions: Sequence[Decision]) -> list[str]:
    return [d.verdict.detail for d in decisions if d.verdict.gate is GateName.SIZER]


async def first_sized(tmp_path: Path, marks: MarksAway | None) -> list[str]:
    rig = await build_rig(tmp_path, entry_marks=marks)
    if marks is not None:
        marks.exchange = rig.exchange.inner
    for _ in range(600):
        rig.clock.advance(STEP.total_seconds())
        await rig.core.keeper.tick(rig.clock.now())
        summary = await rig.core.executor.run_cycle(rig.clock.now())
        details = sizer_details(summary.decisions)
        if details:
            return details
    raise AssertionError("nothing sized within the window")


async def test_an_entry_is_sized_at_the_mark_where_the_executor_has_marks(tmp_path: Path) -> None:
    marks = MarksAway()
    [detail] = (await first_sized(tmp_path, marks))[:1]

    found = re.search(r"at_mark=(\S+) bar_close=(\S+)", detail)
    assert found is not None, detail
    mark, close = Decimal(found.group(1)), Decimal(found.group(2))
    assert marks.asked  # asked once the candidate was approved, before sizing
    assert mark != close
    assert abs(mark / close - AWAY) < Decimal("0.01")  # the paper price is the bar's, near


async def test_without_marks_an_entry_is_sized_at_the_bar_close_as_before(tmp_path: Path) -> None:
    [detail] = (await first_sized(tmp_path, None))[:1]
    assert "at_mark" not in detail
    assert "bar_close" not in detail


class Streams:
    """The mark-price part of ExchangeStreams: `fresh` marks, or none."""

    def __init__(self, fresh: dict[str, Decimal]) -> None:
        self.fresh = fresh

    def mark_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal] | None:
        found = {s: self.fresh[s] for s in symbols if s in self.fresh}
        return found or None


class Unreadable:
    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        raise RetryLater("rate limited by the exchange")


class Readable:
    def __init__(self) -> None:
        self.reads = 0

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        self.reads += 1
        return {s: Decimal(101) for s in symbols}


NOW = datetime(2025, 6, 1, tzinfo=UTC)
BTC = "BTC/USDT:USDT"


async def test_live_marks_take_the_streamed_mark_then_rest_then_none() -> None:
    rest = Readable()
    streamed = LiveMarks(rest, Streams({BTC: Decimal(100)}))  # type: ignore[arg-type]
    assert await streamed.mark(BTC, NOW) == Decimal(100)
    assert rest.reads == 0
    assert await LiveMarks(rest, Streams({})).mark(BTC, NOW) == Decimal(101)  # type: ignore[arg-type]
    assert await LiveMarks(rest, None).mark(BTC, NOW) == Decimal(101)  # type: ignore[arg-type]
    assert rest.reads == 2
    with capture_logs() as logs:
        assert await LiveMarks(Unreadable(), None).mark(BTC, NOW) is None  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["entry_mark_unavailable"]
