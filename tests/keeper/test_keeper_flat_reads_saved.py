"""Where the keeper read each symbol flat, kept across a restart (keeper/flat_reads.py): what
a person did there while the daemon was stopped is replayed from flat at the first look
after the start, as within one run (test_keeper_adopted_from_flat.py). Before, the first
look after a start adopted what was held with nothing before it booked: an open and a flip
made while the daemon was down left the long's round trip and the short's fee unbooked."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_adopted_from_flat import QUANTITY, opened_and_flipped, the_longs_round_trip_booked
from test_keeper_external_exits import BTC, by_hand, fee_paid, opened
from test_keeper_external_unpriced import until_stuck
from test_keeper_properties import KEEPER, RULES, T0, Harness
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.flat_reads import FLAT_READS
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger


async def test_an_open_and_flip_while_the_daemon_was_stopped_books_the_first_round_trip() -> None:
    """Was: the short adopted with no fee, the long 100 → 102 never booked."""
    harness = await Harness.start()
    await harness.tick()  # reads BTC flat, saved
    harness.advance(timedelta(hours=2))  # the daemon stopped meanwhile
    await opened_and_flipped(harness)
    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()

    await the_longs_round_trip_booked(harness)
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "1 round trip(s) before it booked" in str(adopted["detail"])
    assert BTC not in await saved_reads(harness)  # the books hold BTC now: its run ended

    await harness.restart()  # and booked once
    await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1


async def test_a_run_is_saved_when_it_begins_and_deleted_when_it_ends() -> None:
    """Written when a symbol's run of flat reads begins or ends (and once more after what
    happened while stopped was read: the next test), not every tick."""
    harness = await Harness.start()
    await harness.tick()
    began = harness.now
    saved = await saved_reads(harness)
    assert set(saved) == set(RULES)
    assert saved[BTC] == {"at": began.isoformat(), "leverage": 1}
    await harness.tick()
    await harness.tick()
    assert (await saved_reads(harness))[BTC]["at"] == began.isoformat()

    await opened(harness)
    assert BTC not in await saved_reads(harness)
    assert set(await saved_reads(harness)) == set(RULES) - {BTC}


async def test_a_restored_read_takes_in_no_trade_before_it() -> None:
    """Our long closed by hand at 101 (booked MANUAL), BTC read flat and saved, a restart:
    the trades booked then are no longer left out (that memory is this run's). A short
    the person opened at 101 whose trade is not listed yet must not be explained by the
    old close's sell, 0.0… at 101 too: within a run the five trades before a flat read may
    be taken in (a read that lagged); from a restored read none is. Adopted as before,
    the old close's fee not counted again."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    await harness.tick()  # the close booked
    await harness.tick()  # BTC read flat, saved
    [ours] = await harness.repository.closed_trades()
    assert ours.exit_reason is ExitReason.MANUAL
    await harness.restart()
    await trade(harness, "web_open_1", OrderSide.SELL, quantity)
    harness.exchange.fills["web_open_1"] = []  # not listed yet
    with capture_logs() as logs:
        await harness.tick()

    assert len(await harness.repository.closed_trades()) == 1
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, quantity)
    assert position.fees_usdt == 0  # not the old close's
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "do not show" in str(adopted["detail"])


async def test_a_read_older_than_the_trades_window_replays_the_week_it_reaches() -> None:
    """Stopped for more than a week: one read of Binance's trades reaches back 7 days. The
    open and flip of the last days are replayed as after a short stop; a long opened before
    the window and flipped in it is not shown by the week's trades (a sell of twice the
    short held: arithmetic, not a guess), so it is adopted as before, the line saying so."""
    harness = await Harness.start()
    await harness.tick()
    harness.advance(timedelta(days=8))
    await opened_and_flipped(harness)
    await harness.restart()
    await harness.tick()
    [long] = await harness.repository.closed_trades()
    assert (long.entry_price, long.exit_price) == (Decimal(100), Decimal(102))
    [(_, start, _)] = harness.exchange.account_fills_asked
    assert start > T0

    harness = await Harness.start()
    await harness.tick()
    harness.exchange.move(BTC, Decimal(100))
    harness.advance(timedelta(days=1))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)  # while stopped, 9 days ago
    harness.advance(timedelta(days=9))
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()
    assert await harness.repository.closed_trades() == []
    assert harness.keeper.positions[BTC].side is Side.SHORT
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "do not show" in str(adopted["detail"])


async def test_a_saved_read_of_a_symbol_the_books_hold_is_deleted_at_the_start() -> None:
    """A stop between the booking that ended a run and the deletion of its entry: kept, it
    would bound the run after the position's close from before the position, whose
    trades by hand a restart no longer leaves out. Deleted (a position adopted: its replay
    from flat read what came before it)."""
    harness = await Harness.start()
    await harness.tick()
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    await harness.tick()
    assert not harness.keeper.positions[BTC].entry_order_id.startswith("qt-")
    await harness.repository.save_state(FLAT_READS, BTC, {"at": T0.isoformat(), "leverage": 1})
    await harness.restart()
    assert BTC not in await saved_reads(harness)


async def test_a_saved_read_before_our_entry_is_read_after_the_start_then_saved_anew() -> None:
    """Where our entry ended the run, the saved read stays until the trades before the entry
    are read — the second look after the start (seed 40290: a round trip by hand just
    before our entry, the daemon stopped before a look read it) — and never bounds the run
    after the position's close: that one is saved anew."""
    harness = await Harness.start()
    await harness.tick()
    quantity = await opened(harness)
    await harness.repository.save_state(FLAT_READS, BTC, {"at": T0.isoformat(), "leverage": 1})
    await harness.restart()
    assert (await saved_reads(harness))[BTC]["at"] == T0.isoformat()
    asked = len(harness.exchange.account_fills_asked)
    await harness.tick()  # the first look after the start protects what it finds
    assert harness.exchange.account_fills_asked[asked:] == []
    await harness.tick()  # and the second reads (ETH too: what was done there while stopped)
    [start] = [a[1] for a in harness.exchange.account_fills_asked[asked:] if a[0] == BTC]
    assert start <= T0
    assert BTC not in await saved_reads(harness)

    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    await harness.tick()  # the close booked: BTC flat since the instant after its trade
    [close] = harness.exchange.fills["web_closed_1"]
    after_it = close.time + timedelta(milliseconds=1)
    assert (await saved_reads(harness))[BTC]["at"] == after_it.isoformat()


async def test_an_unreadable_saved_read_is_said_once_and_dropped() -> None:
    harness = await Harness.start()
    await harness.tick()
    await harness.repository.save_state(FLAT_READS, BTC, {"at": "yesterday", "leverage": 1})
    await harness.repository.save_state(FLAT_READS, "GONE/USDT:USDT", {"at": T0.isoformat()})
    await opened_and_flipped(harness)
    with capture_logs() as logs:
        await harness.restart()
    [said] = [e for e in logs if e["event"] == "flat_read_unreadable"]
    assert said["symbol"] == BTC
    assert "adopted with nothing before it booked" in str(said["detail"])
    saved = await saved_reads(harness)
    assert BTC not in saved
    assert "GONE/USDT:USDT" not in saved  # out of the universe: deleted, nothing to say

    await harness.tick()  # adopted as on a first look
    assert await harness.repository.closed_trades() == []
    assert harness.keeper.positions[BTC].side is Side.SHORT


async def test_a_keeper_that_does_not_save_its_flat_reads_writes_nothing() -> None:
    """A backtest's (app.assemble gives no clock): no person trades beside it."""
    harness = await Harness.start()
    ledger = await Ledger.load(harness.repository, Decimal(10_000), T0, PerformanceSettings())
    harness.keeper = await PositionKeeper.load(
        harness.exchange,
        harness.repository,
        ledger,
        RULES,
        KEEPER,
        MonitorSettings(),
        beside_a_person=False,
    )
    await harness.tick()
    assert await saved_reads(harness) == {}


async def saved_reads(harness: Harness) -> dict[str, dict[str, object]]:
    return await harness.repository.load_state(FLAT_READS)


async def test_a_round_trip_while_the_daemon_was_stopped_is_booked_at_the_second_look() -> None:
    """Opened and closed by hand while the daemon was stopped on a symbol it read flat:
    nothing is held, so nothing else reads the trades (the hand-trading campaign with a
    restart, seed 40016: never booked). The second look after the start books it — the
    first protects what it finds without waiting for the reads — once, across a restart."""
    harness = await Harness.start()
    await harness.tick()
    harness.advance(timedelta(minutes=2))
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_1", OrderSide.SELL, QUANTITY)
    harness.exchange.now += timedelta(seconds=1)
    harness.exchange.move(BTC, Decimal(97))
    await trade(harness, "web_close_1", OrderSide.BUY, QUANTITY)
    await harness.restart()
    await harness.tick()
    assert await harness.repository.closed_trades() == []
    assert harness.exchange.account_fills_asked == []

    await harness.tick()
    [short] = await harness.repository.closed_trades()
    assert (short.side, short.quantity, short.entry_price, short.exit_price) == (
        Side.SHORT,
        QUANTITY,
        Decimal(100),
        Decimal(97),
    )
    assert short.exit_reason is ExitReason.MANUAL
    assert short.fees_usdt == fee_paid(harness, "web_open_1") + fee_paid(harness, "web_close_1")
    asked = [symbol for symbol, _, _ in harness.exchange.account_fills_asked]
    assert sorted(asked) == sorted(RULES)  # one read a symbol, once
    read_at = harness.now  # saved again: a later start reads the trades from there
    assert (await saved_reads(harness))[BTC]["at"] == read_at.isoformat()
    await harness.tick()
    await harness.restart()
    for _ in range(3):
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1
    assert len(harness.exchange.account_fills_asked) == 2 * len(RULES)  # each start once


async def test_trades_while_stopped_not_back_to_flat_are_read_again_until_the_close_is_listed(
) -> None:  # fmt: skip
    """The close's trade not listed yet: the open alone does not come back to flat. Read
    again at each look, nothing said, and booked once the close is listed (was: said at the
    second look, and never booked)."""
    harness = await Harness.start()
    await harness.tick()
    await trade(harness, "web_open_1", OrderSide.SELL, QUANTITY)
    harness.exchange.now += timedelta(seconds=1)
    await trade(harness, "web_close_1", OrderSide.BUY, QUANTITY)
    close_fills = harness.exchange.fills["web_close_1"]
    harness.exchange.fills["web_close_1"] = []  # not listed yet
    await harness.restart()
    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()
    assert await harness.repository.closed_trades() == []
    assert [e for e in logs if e["event"] == "round_trips_while_stopped"] == []

    harness.exchange.fills["web_close_1"] = close_fills
    await harness.tick()
    [short] = await harness.repository.closed_trades()
    assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
    assert short.fees_usdt == fee_paid(harness, "web_open_1") + fee_paid(harness, "web_close_1")
    await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1


async def test_trades_while_stopped_that_do_not_come_back_to_flat_are_said_once() -> None:
    """The close's trade never listed: said once `keeper.external_close_mark_after_s` after
    the open, nothing booked, and not read again."""
    harness = await Harness.start()
    await harness.tick()
    await trade(harness, "web_open_1", OrderSide.SELL, QUANTITY)
    harness.exchange.now += timedelta(seconds=1)
    await trade(harness, "web_close_1", OrderSide.BUY, QUANTITY)
    harness.exchange.fills["web_close_1"] = []  # never listed
    await harness.restart()
    await harness.tick()
    with capture_logs() as logs:
        for _ in range(round(KEEPER.external_close_mark_after_s / 5) + 3):
            await harness.tick()

    assert await harness.repository.closed_trades() == []
    [said] = [e for e in logs if e["event"] == "round_trips_while_stopped"]
    assert said["symbol"] == BTC
    assert "one never listed" in str(said["detail"])
    reads = len(harness.exchange.account_fills_asked)
    await harness.tick()
    assert len(harness.exchange.account_fills_asked) == reads


async def test_trades_before_the_saved_read_are_not_taken_for_a_round_trip_while_stopped() -> None:
    """The read of the trades reaches 5 min before the saved flat read, where the last
    position's close by hand lies: nothing happened while stopped, so nothing is said
    (was: "do not take it from flat back to flat", the campaign with a restart, seed 40108)."""
    harness = await Harness.start()
    quantity = await opened(harness)
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    await harness.tick()  # the close booked, BTC read flat and saved
    await harness.restart()
    await harness.tick()
    with capture_logs() as logs:
        await harness.tick()

    assert len(await harness.repository.closed_trades()) == 1
    assert [e for e in logs if e["event"] == "round_trips_while_stopped"] == []


async def test_a_read_of_the_trades_while_stopped_that_failed_is_tried_again() -> None:
    """The second look's read of BTC's trades answered 429 (the campaign with a restart,
    seed 40163: the round trip never booked): tried on the next tick until it reads."""
    harness = await Harness.start()
    await harness.tick()
    await trade(harness, "web_open_1", OrderSide.SELL, QUANTITY)
    harness.exchange.now += timedelta(seconds=1)
    await trade(harness, "web_close_1", OrderSide.BUY, QUANTITY)
    await harness.restart()
    await harness.tick()
    harness.exchange.account_fills_unreadable = len(RULES)  # every read of the second look
    await harness.tick()
    assert await harness.repository.closed_trades() == []
    await harness.tick()

    [short] = await harness.repository.closed_trades()
    assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
    for _ in range(3):
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1
    assert len(harness.exchange.account_fills_asked) == 2 * len(RULES)  # read until read


async def test_a_round_trip_booked_before_a_restart_is_not_taken_for_an_addition_after_it() -> None:
    """A round trip by hand booked, then a long opened by hand and adopted within 5 min,
    then closed by hand while the daemon was stopped: the first look after the start reads
    the close from 5 min before the adoption, where the round trip lies. Its trades, booked
    by the last run, are left out after the restart too (saved: keeper/external_saved.py);
    was: its buy taken for an addition to the long, booked 0.02 at the average of the
    sells (the campaign with a restart, seed 40212)."""
    harness = await Harness.start()
    await harness.tick()
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_rt_open", OrderSide.SELL, QUANTITY)
    harness.exchange.now += timedelta(seconds=1)
    await trade(harness, "web_rt_close", OrderSide.BUY, QUANTITY)
    await harness.restart()
    await harness.tick()
    await harness.tick()  # the round trip booked, SHORT 0.01
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_long", OrderSide.BUY, QUANTITY)
    await harness.tick()  # adopted
    assert harness.keeper.positions[BTC].quantity == QUANTITY
    harness.exchange.move(BTC, Decimal(104))
    await trade(harness, "web_long_close", OrderSide.SELL, QUANTITY)
    await harness.restart()
    await harness.tick()

    short, long = sorted(await harness.repository.closed_trades(), key=lambda t: t.closed_at)
    assert (short.side, short.quantity, short.exit_price) == (Side.SHORT, QUANTITY, Decimal(100))
    assert (long.side, long.quantity, long.entry_price, long.exit_price) == (
        Side.LONG,
        QUANTITY,
        Decimal(101),
        Decimal(104),
    )
    assert long.fees_usdt == fee_paid(harness, "web_long") + fee_paid(harness, "web_long_close")


async def test_a_round_trip_while_stopped_after_our_exit_answered_in_the_last_tick_is_booked(
) -> None:  # fmt: skip
    """Our market exit (the stop stuck firing) answered and booked in the daemon's last tick:
    the positions that tick read still showed the long, so no whole tick read the symbol
    flat after it and no run of flat reads was saved; a person's round trip while the daemon
    was stopped then went unbooked (the restart campaign with round trips, seed 40919,
    2026-12-06; it failed on every run). The run now begins at the instant after our exit's
    last fill, saved in that tick, and the second look after the start books the round
    trip."""
    harness = await Harness.start()
    await opened(harness)
    position = harness.keeper.positions[BTC]
    exchange = harness.exchange
    exchange.stall_next = True
    exchange.move(BTC, position.stop_price - 1)
    await until_stuck(harness)
    await harness.tick()  # our exit at market, answered and booked in this tick
    assert harness.keeper.positions == {}
    assert BTC in await saved_reads(harness)
    await harness.restart()  # before another tick
    harness.advance(timedelta(minutes=1))
    exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_2", OrderSide.SELL, QUANTITY)
    exchange.now += timedelta(seconds=1)
    exchange.move(BTC, Decimal(98))
    await trade(harness, "web_close_2", OrderSide.BUY, QUANTITY)
    await harness.tick()
    await harness.tick()

    trades = await harness.repository.closed_trades()
    [short] = [t for t in trades if t.side is Side.SHORT]
    assert (short.entry_price, short.exit_price, short.exit_reason) == (
        Decimal(100),
        Decimal(98),
        ExitReason.MANUAL,
    )
    assert short.fees_usdt == fee_paid(harness, "web_open_2") + fee_paid(harness, "web_close_2")
