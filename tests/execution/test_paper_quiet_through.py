"""The paper account's quiet answer, which a backtest repeats steps on (replay_quiet.py):
`quiet_marks` is None exactly when catching up to that instant would change the account (a
stop or take-profit triggers, a funding settlement falls due), whatever instants it is asked at
and however long ago the account last caught up. It keeps the first instant something falls
due between catch-ups; this checks that against an account that catches up each time."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from paper_builders import BTC, at, conditional, flat_rows, make_bars, make_exchange, make_funding
from paper_builders import market as market_order

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import OrderKind, OrderSide
from quantum_trader.execution.paper import PaperExchange

BARS = 300  # 25 hours of 5-minute bars at 20,000
MINUTES = st.integers(min_value=0, max_value=BARS * 5 - 1)


async def _account(
    lows: dict[int, float], highs: dict[int, float], funding_at: list[int]
) -> tuple[ManualClock, PaperExchange]:
    """A long of 0.1 BTC at 20,000 with a stop at 18,500 and a take-profit at 21,500."""
    rows = flat_rows(20_000.0, BARS)
    for index, low in lows.items():
        rows[index] = (20_000.0, 20_000.0, low, 20_000.0)
    for index, high in highs.items():
        _, _, low, _ = rows[index]
        rows[index] = (20_000.0, high, low, 20_000.0)
    clock = ManualClock(at(0))
    times = [at(minute) for minute in sorted(funding_at)]
    funding = {BTC: make_funding(times, [0.0001] * len(times))}
    paper = make_exchange(clock, {BTC: make_bars(BTC, rows)}, funding=funding)
    await paper.place_order(market_order("e1", OrderSide.BUY, "0.1"))
    await paper.place_order(
        conditional("s1", OrderKind.STOP_MARKET, OrderSide.SELL, "0.1", "18500")
    )
    await paper.place_order(
        conditional("t1", OrderKind.TAKE_PROFIT_MARKET, OrderSide.SELL, "0.1", "21500")
    )
    return clock, paper


def _quiet_at(paper: PaperExchange, minute: int) -> bool:
    return paper.quiet_marks(ms_from_utc(at(minute))) is not None


async def _what_catching_up_changes(paper: PaperExchange, clock: ManualClock, minute: int) -> bool:
    before = await paper.fetch_open_conditional_orders(), paper.revision  # listing catches up
    clock.set(at(minute))
    after = await paper.fetch_open_conditional_orders(), paper.revision
    return before != after


@settings(max_examples=60, deadline=None)
@given(
    lows=st.dictionaries(st.integers(1, BARS - 1), st.floats(17_000, 19_999), max_size=4),
    highs=st.dictionaries(st.integers(1, BARS - 1), st.floats(20_001, 23_000), max_size=4),
    funding_at=st.lists(MINUTES, max_size=4, unique=True),
    # Forward in time, as a backtest asks: minutes after the last ask, then whether to catch up.
    asks=st.lists(st.tuples(st.integers(0, 150), st.booleans()), min_size=1, max_size=20),
)
@example(lows={}, highs={}, funding_at=[1], asks=[(1, False)])  # due at the instant asked
@example(lows={3: 18_000.0}, highs={}, funding_at=[], asks=[(19, False), (1, False)])  # bar 3
@example(lows={}, highs={200: 22_000.0}, funding_at=[], asks=[(100, True), (105, False)])
async def test_quiet_marks_is_none_exactly_when_catching_up_would_change_the_account(
    lows: dict[int, float],
    highs: dict[int, float],
    funding_at: list[int],
    asks: list[tuple[int, bool]],
) -> None:
    clock, paper = await _account(lows, highs, funding_at)
    caught_up, minute = [0], 0
    for ahead, then_catch_up in asks:
        minute = min(minute + ahead, BARS * 5 - 1)
        quiet = _quiet_at(paper, minute)
        reference_clock, reference = await _account(lows, highs, funding_at)
        for earlier in caught_up:  # the reference account where the one asked stands
            reference_clock.set(at(earlier))
            await reference.fetch_balance()
        assert quiet is not await _what_catching_up_changes(reference, reference_clock, minute)
        if then_catch_up:
            clock.set(at(minute))
            await paper.fetch_balance()
            caught_up.append(minute)
    # Catching up where it was found quiet only moves the time (`CatchUp._found_quiet`): the
    # account is the one that scanned the bars at each catch-up.
    reference_clock, reference = await _account(lows, highs, funding_at)
    for earlier in caught_up:
        reference_clock.set(at(earlier))
        await reference.fetch_balance()
    assert paper.revision == reference.revision
    assert await paper.fetch_balance() == await reference.fetch_balance()
    listed = await paper.fetch_open_conditional_orders()
    assert listed == await reference.fetch_open_conditional_orders()


async def test_a_position_opened_without_an_order_on_the_book_makes_its_funding_count() -> None:
    """Funding falls due only for a held symbol: a market order that opens a position between
    two asks (no conditional order placed, no catch-up after it) makes the next one not quiet."""
    _, paper = await _account({}, {}, [30])
    await paper.place_order(market_order("x1", OrderSide.SELL, "0.1", reduce_only=True))
    for order_id in ("s1", "t1"):
        await paper.cancel_conditional_order(BTC, order_id)
    assert _quiet_at(paper, 45)  # flat: the settlement at 30 pays nothing
    await paper.place_order(market_order("e2", OrderSide.BUY, "0.1"))
    assert not _quiet_at(paper, 45)  # held: the settlement at 30 is due


async def test_a_stop_moved_without_a_catch_up_is_seen() -> None:
    """The keeper moves a stop at the instant the account last caught up: the next ask sees
    the new stop's trigger."""
    _, paper = await _account({10: 19_000.0}, {}, [])  # bar 10 dips to 19,000
    assert _quiet_at(paper, 60)  # above the stop at 18,500
    await paper.cancel_conditional_order(BTC, "s1")
    tighter = conditional("s2", OrderKind.STOP_MARKET, OrderSide.SELL, "0.1", "19500")
    await paper.place_order(tighter)
    assert not _quiet_at(paper, 60)  # bar 10 reaches 19,500
