"""Funding paid over a position's life, read from GET /fapi/v1/income on the stand-in.

Binance lists at most 1,000 income rows a request (100 unless asked) and keeps three months
of them. A symbol that settles funding every hour settles 1,000 times in under 42 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from loopback import LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock, utc_from_ms

DOGE, DOGE_ID = "DOGE/USDT:USDT", "DOGEUSDT"
HOUR_MS = 3_600_000
T0 = datetime(2025, 11, 1, tzinfo=UTC)  # the stand-in's and the adapter's clock
PAID = Decimal("-0.01")  # each settlement: 0.01 USDT paid


async def test_a_position_settling_hourly_for_sixty_days_books_every_settlement() -> None:
    async with LoopbackBinance(clock=ManualClock(T0)) as server:
        now = server.state.now_ms
        settlements = 60 * 24  # 1,440: more than one page
        for n in range(settlements):
            server.state.book_funding(DOGE_ID, PAID, now - (settlements - n) * HOUR_MS)
        server.state.book_funding("BTCUSDT", Decimal(-5), now - HOUR_MS)  # another symbol's
        exchange = connect(server)
        try:
            with capture_logs() as logs:
                paid = await exchange.fetch_funding_paid(DOGE, utc_from_ms(now - 61 * 24 * HOUR_MS))
        finally:
            await exchange.close()
    assert paid == -PAID * settlements  # was 1,000 of them
    assert not [e for e in logs if e["event"] == "funding_history_short"]


async def test_settlements_sharing_a_page_boundary_count_once_each() -> None:
    async with LoopbackBinance(clock=ManualClock(T0)) as server:
        now = server.state.now_ms
        first = now - 2_000 * HOUR_MS // 24
        times = [first + n * 60_000 for n in range(999)] + [first + 999 * 60_000] * 2
        for time_ms in times:
            server.state.book_funding(DOGE_ID, PAID, time_ms)
        exchange = connect(server)
        try:
            paid = await exchange.fetch_funding_paid(DOGE, utc_from_ms(first))
        finally:
            await exchange.close()
    assert paid == -PAID * 1_001


async def test_a_position_older_than_binance_keeps_income_says_so() -> None:
    """Funding before Binance's three months cannot be read: what it kept is booked, and the
    shortfall is said rather than left silent."""
    async with LoopbackBinance(clock=ManualClock(T0)) as server:
        now = server.state.now_ms
        for day in range(120):
            server.state.book_funding(DOGE_ID, PAID, now - (120 - day) * 24 * HOUR_MS + 1)
        exchange = connect(server)
        opened = utc_from_ms(now) - timedelta(days=121)
        try:
            with capture_logs() as logs:
                paid = await exchange.fetch_funding_paid(DOGE, opened)
        finally:
            await exchange.close()
    assert paid == -PAID * 90  # the last three months' settlements
    short = [e for e in logs if e["event"] == "funding_history_short"]
    assert [(e["symbol"], e["opened_at"]) for e in short] == [(DOGE, opened.isoformat())]


async def test_an_answer_that_ignores_start_time_ends_the_read_instead_of_looping() -> None:
    """Another stand-in (or proxy) may answer every page with the same first 1,000 rows: the
    read stops at a page with nothing new rather than asking forever."""
    async with LoopbackBinance(clock=ManualClock(T0)) as server:
        now = server.state.now_ms
        for n in range(1_500):
            server.state.book_funding(DOGE_ID, PAID, now - (1_500 - n) * HOUR_MS)
        first_page = server.state.income[:1_000]
        server.state.income_history = lambda params: first_page  # type: ignore[method-assign]
        exchange = connect(server)
        try:
            paid = await exchange.fetch_funding_paid(DOGE, utc_from_ms(now - 70 * 24 * HOUR_MS))
        finally:
            await exchange.close()
    assert paid == -PAID * 1_000  # what the answers held, once each
