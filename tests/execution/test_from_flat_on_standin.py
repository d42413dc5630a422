"""What a person does within one look on a symbol the books hold nothing on, through the ccxt
adapter and BinanceStreams on the stand-in (keeper/from_flat_settle.py): an open and a flip,
both streamed, seen by the next tick as a short alone. Hand-trading seed 30002 (the long's
round trip never booked); here the account's trades are read through GET /fapi/v1/userTrades
from the tick that read the symbol flat."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from loopback.faults import Fault, Outage
from loopback.fixtures import advance, advance_until, settle
from standin_keeper import BTC_MARKET, EnteringKeeper, StandinKeeper, keeper_on_streams
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_missed_events_on_standin import our_stops

from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side

QUANTITY = Decimal("0.003")


async def by_hand(rig: StandinKeeper, name: str, side: OrderSide, quantity: Decimal) -> None:
    """A market order a person sends on Binance's site (not one of ours)."""
    await rig.exchange.place_order(OrderRequest(name, BTC, side, OrderKind.MARKET, quantity))
    await settle(rig.server)


async def round_trip(rig: StandinKeeper, side: OrderSide, move: int) -> Decimal:
    """BTC opened by hand on `side` at the mark, then closed with the mark `move` away: the
    opening price."""
    opened = rig.server.state.mark(BTC_MARKET)
    await by_hand(rig, "web_open_1", side, QUANTITY)
    rig.server.state.marks[BTC_MARKET] = opened + move
    closing = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
    await by_hand(rig, "web_close_1", closing, QUANTITY)
    return opened


async def trades_read_refused(rig: StandinKeeper) -> None:
    """A look whose read of BTC's trades is refused (429)."""
    busy = Fault(path="/fapi/v1/userTrades", status=429, code=-1003, msg="Too many requests")
    rig.server.inject(busy)
    with capture_logs() as logs:
        await rig.tick()
    assert [e["symbol"] for e in logs if e["event"] == "account_trades_unread"] == [BTC]


async def the_round_trip_booked(
    rig: StandinKeeper, side: Side, prices: tuple[Decimal, Decimal]
) -> None:
    """One trade booked, BTC's round trip by hand: `side`, MANUAL, at its (entry, exit)
    prices, with fees."""
    [trade] = await rig.repository.closed_trades()
    assert (trade.side, trade.exit_reason) == (side, ExitReason.MANUAL)
    assert (trade.entry_price, trade.exit_price) == prices
    assert trade.fees_usdt > 0


async def opened_and_flipped(rig: StandinKeeper) -> tuple[Decimal, Decimal]:
    """BTC bought by hand at the mark, then sold twice as much 250 higher: the two prices."""
    opened = rig.server.state.mark(BTC_MARKET)
    await by_hand(rig, "web_open_1", OrderSide.BUY, QUANTITY)
    rig.server.state.marks[BTC_MARKET] = flipped = opened + 250
    await by_hand(rig, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    return opened, flipped


async def test_an_open_and_flip_by_hand_within_one_look_books_the_long_through_ccxt() -> None:
    async with keeper_on_streams(StandinKeeper) as rig:  # its first tick read BTC flat
        opened, flipped = await opened_and_flipped(rig)
        with capture_logs() as logs:
            await rig.tick()

        closed = [e for e in logs if e["event"] == "position_closed"]
        assert [(e["side"], e["exit_reason"], Decimal(e["exit_price"])) for e in closed] == [
            (Side.LONG, ExitReason.MANUAL, flipped)
        ]
        [long] = await rig.repository.closed_trades()
        assert (long.quantity, long.entry_price) == (QUANTITY, opened)
        assert long.fees_usdt > 0  # the open's and half the flip's, from the account's trades
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity, position.entry_price) == (
            Side.SHORT,
            QUANTITY,
            flipped,
        )
        assert position.fees_usdt > 0  # the flip's other half
        [stop] = our_stops(await rig.exchange.fetch_snapshot(rig.now()))
        assert (stop.side, stop.trigger_price) == (OrderSide.BUY, position.stop_price)
        assert any(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests)

        await rig.tick(3)  # booked once
        assert len(await rig.repository.closed_trades()) == 1


async def test_an_open_and_flip_while_the_daemon_was_stopped_books_the_long_through_ccxt() -> None:
    """The same, made while the daemon was stopped: the start's first look replays from
    where the last run read BTC flat (saved: keeper/flat_reads.py); before, it adopted the
    short with the long's round trip never booked."""
    async with keeper_on_streams(StandinKeeper) as rig:  # its first tick read BTC flat
        opened, flipped = await opened_and_flipped(rig)
        await rig.restart()

        [long] = await rig.repository.closed_trades()
        assert (long.side, long.exit_reason) == (Side.LONG, ExitReason.MANUAL)
        assert (long.quantity, long.entry_price, long.exit_price) == (QUANTITY, opened, flipped)
        assert long.fees_usdt > 0
        position = rig.keeper.positions[BTC]
        assert (position.side, position.entry_price) == (Side.SHORT, flipped)
        assert position.fees_usdt > 0
        [stop] = our_stops(await rig.exchange.fetch_snapshot(rig.now()))
        assert (stop.side, stop.trigger_price) == (OrderSide.BUY, position.stop_price)


async def test_a_round_trip_while_the_daemon_was_stopped_is_booked_through_ccxt() -> None:
    """Opened and closed by hand while the daemon was stopped: nothing held, so only the
    second look after the start reads BTC's trades (GET /fapi/v1/userTrades) and books it."""
    async with keeper_on_streams(StandinKeeper) as rig:  # its first tick read BTC flat
        opened = await round_trip(rig, OrderSide.SELL, -300)
        closed = opened - 300
        await rig.restart()  # its first look: nothing held, nothing booked
        assert await rig.repository.closed_trades() == []
        await rig.tick()

        [short] = await rig.repository.closed_trades()
        assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
        assert (short.quantity, short.entry_price, short.exit_price) == (QUANTITY, opened, closed)
        assert short.fees_usdt > 0
        assert short.pnl_usdt > 0
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1


async def test_a_round_trip_within_one_look_is_booked_through_ccxt() -> None:
    """Opened and closed by hand between two looks of a running keeper: nothing held, but
    the user-data stream reported BTC's position change, so the next look reads its trades
    (GET /fapi/v1/userTrades) and books the round trip; before, nothing read them (the
    hand-trading campaign, seed 40065: a later close's replay took them for an addition)."""
    async with keeper_on_streams(StandinKeeper) as rig:  # its first tick read BTC flat
        opened = await round_trip(rig, OrderSide.BUY, 400)
        closed = opened + 400
        with capture_logs() as logs:
            await rig.tick()

        [long] = await rig.repository.closed_trades()
        assert (long.side, long.exit_reason) == (Side.LONG, ExitReason.MANUAL)
        assert (long.quantity, long.entry_price, long.exit_price) == (QUANTITY, opened, closed)
        assert long.fees_usdt > 0
        assert long.pnl_usdt > 0
        said = [e for e in logs if e["event"] == "position_closed_externally"]
        assert ["between two looks" in e["detail"] for e in said] == [True]
        assert BTC not in rig.keeper.positions
        reads = sum(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests)
        await rig.tick(3)  # booked once, its trades read once
        assert len(await rig.repository.closed_trades()) == 1
        assert sum(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests) == reads


async def test_a_look_with_no_stream_event_on_a_flat_symbol_reads_no_trades() -> None:
    """The round trip's read costs weight only where the stream reported a change: ticks on
    a flat account read no trades."""
    async with keeper_on_streams(StandinKeeper) as rig:
        await rig.tick(3)
        assert not any(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests)


async def test_a_round_trip_within_one_look_whose_trades_answered_429_is_booked_next_look() -> None:
    """The read of its trades refused (429): the look that read BTC flat before is kept,
    so the next look reads the trades again and books the round trip (once)."""
    async with keeper_on_streams(StandinKeeper) as rig:
        opened = await round_trip(rig, OrderSide.SELL, -200)
        await trades_read_refused(rig)
        assert await rig.repository.closed_trades() == []
        await rig.tick()

        [short] = await rig.repository.closed_trades()
        assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
        assert (short.entry_price, short.exit_price) == (opened, opened - 200)
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1


async def test_an_open_whose_position_event_was_lost_is_adopted_at_the_look_reading_its_trade() -> (
    None
):
    """The person's open reached the mirror as its fill (ORDER_TRADE_UPDATE) but not as a
    position (ACCOUNT_UPDATE lost): the look reads BTC flat, its trade does not come back to
    flat, and that plan is dropped for a REST read, which shows the long — adopted with its
    fee and protected at that look (the hand-trading campaign, seed 32885: said as a round
    trip not booked, the long adopted by the position check up to 20 s later)."""
    async with keeper_on_streams(StandinKeeper) as rig:
        sinks = rig.server.state.sinks
        rig.server.state.sinks = [lost_position_events(sink) for sink in sinks]
        opened = rig.server.state.mark(BTC_MARKET)
        await by_hand(rig, "web_open_1", OrderSide.BUY, QUANTITY)
        rig.server.state.sinks = sinks
        with capture_logs() as logs:
            await rig.tick()

        assert [e["event"] for e in logs if "round_trips" in e["event"]] == []
        checked = [e["event"] for e in logs if e["event"].startswith("stream_")]
        assert checked[:2] == ["stream_flat_checked_by_rest", "stream_mirror_differs"]
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity, position.entry_price) == (
            Side.LONG,
            QUANTITY,
            opened,
        )
        assert position.fees_usdt > 0
        [stop] = our_stops(await rig.exchange.fetch_snapshot(rig.now()))
        assert (stop.side, stop.trigger_price) == (OrderSide.SELL, position.stop_price)


def lost_position_events(
    sink: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, Any]], None]:
    """`sink` (the stand-in's stream hub) without the ACCOUNT_UPDATE events."""

    def passed(event: dict[str, Any]) -> None:
        if event.get("e") != "ACCOUNT_UPDATE":
            sink(event)

    return passed


async def stopped_out_then_round_trip(rig: EnteringKeeper) -> tuple[Decimal, Decimal]:
    """Our BTC long (stop 97,000) stopped out at 96,500, then a short opened by hand a
    second later and closed another second later 300 lower: the short's two prices."""
    await rig.enter()
    await rig.tick()
    rig.server.state.marks[BTC_MARKET] = Decimal(96_500)
    rig.server.sync()  # the stop fires on the new mark
    await advance(rig.server, 1)
    await by_hand(rig, "web_open_1", OrderSide.SELL, QUANTITY)
    await advance(rig.server, 1)
    rig.server.state.marks[BTC_MARKET] = Decimal(96_200)
    await by_hand(rig, "web_close_1", OrderSide.BUY, QUANTITY)
    return Decimal(96_500), Decimal(96_200)


async def the_stop_and_the_short_booked(
    rig: EnteringKeeper, prices: tuple[Decimal, Decimal]
) -> None:
    long, short = sorted(
        await rig.repository.closed_trades(), key=lambda t: t.side.sign, reverse=True
    )
    assert (long.side, long.exit_reason) == (Side.LONG, ExitReason.SL_HIT)
    assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
    assert (short.quantity, short.entry_price, short.exit_price) == (QUANTITY, *prices)
    assert short.fees_usdt > 0
    await rig.tick(3)  # each booked once
    assert len(await rig.repository.closed_trades()) == 2
    assert BTC not in rig.keeper.positions


async def test_a_round_trip_after_our_stop_filled_within_one_look_is_booked() -> None:
    """Our stop filled and a person opened and closed a short before the keeper's next look:
    the look books our close; the symbol has been flat since the stop's fill, not only since
    that look, so the next look reads the trades the stream reported since and books the
    short. Before, the round trip was never booked."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        prices = await stopped_out_then_round_trip(rig)
        await rig.tick()
        [long] = await rig.repository.closed_trades()
        assert long.exit_reason is ExitReason.SL_HIT
        await rig.tick()

        await the_stop_and_the_short_booked(rig, prices)


async def test_a_round_trip_after_our_stop_filled_while_the_daemon_was_stopped_is_booked() -> None:
    """The same while the daemon was stopped (the restart campaign, seed 40185: our stop
    filled, then two round trips by hand, never booked): the first look after the start
    books our close, the second reads the trades since the stop's fill and books the short."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        prices = await stopped_out_then_round_trip(rig)
        await rig.restart()
        [long] = await rig.repository.closed_trades()
        assert long.exit_reason is ExitReason.SL_HIT
        await rig.tick()

        await the_stop_and_the_short_booked(rig, prices)


async def test_a_round_trip_while_the_user_stream_reconnected_is_booked_after_its_seed() -> None:
    """Opened and closed by hand while the user-data stream was disconnected: its events
    never came, but the mirror's seed after the reconnect says events before its read may
    have been lost, so the next look reads the trades of every symbol it read flat before
    (the restart campaign, seed 40200: never booked)."""
    async with keeper_on_streams(StandinKeeper) as rig:
        assert await rig.server.streams.disconnect("user") == 1
        await settle(rig.server)
        opened = await round_trip(rig, OrderSide.BUY, 100)
        assert rig.streams.moved().by_symbol == {}  # nothing received
        await advance_until(rig.server, lambda: rig.streams.health().usable, 30, "reseeded")
        await rig.tick()

        [long] = await rig.repository.closed_trades()
        assert (long.side, long.exit_reason) == (Side.LONG, ExitReason.MANUAL)
        assert (long.entry_price, long.exit_price) == (opened, opened + 100)
        asked = [p["symbol"] for _, path, p in rig.server.requests if path == "/fapi/v1/userTrades"]
        assert sorted(asked) == sorted(rig.server.state.markets)  # every flat symbol, once
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1


async def test_a_round_trip_lost_before_a_drop_the_client_had_not_noticed_is_booked() -> None:
    """The user-data stream went silent (its events lost), a look trusted it and read BTC
    flat after a round trip by hand, and only then did the connection end: the seed after
    the reconnect says events were lost since the last one received before the gap, so the
    next look reads BTC's trades from there, not from that look (the hand-trading
    campaign, seed 32930: never booked)."""
    async with keeper_on_streams(StandinKeeper) as rig:
        hub = rig.server.streams
        hub.silence("user", 600)
        opened = await round_trip(rig, OrderSide.SELL, -150)
        await rig.tick()  # the stream still usable to the client: BTC read flat
        assert await rig.repository.closed_trades() == []
        hub.faults.silent_until_ms["user"] = 0
        assert await hub.disconnect("user") == 1
        await settle(rig.server)
        await advance_until(rig.server, lambda: rig.streams.health().usable, 30, "reseeded")
        await rig.tick()

        await the_round_trip_booked(rig, Side.SHORT, (opened, opened - 150))
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1


async def test_a_round_trip_whose_read_was_refused_before_our_entry_is_booked_after_it() -> None:
    """A person's round trip on BTC, its trades' read refused (a 429), then our entry booked
    there: BTC is no longer flat, and the read to come was dropped — the round trip never
    booked (the restart campaign with round trips, seeds 40288 and 40289). The read is kept
    across the entry and made up to our entry's first fill: the round trip booked once,
    our long kept as entered, and a close of it by hand booked at its own trade."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        opened = await round_trip(rig, OrderSide.SELL, -200)
        await trades_read_refused(rig)
        await advance(rig.server, 1)
        await rig.enter()
        ours = rig.keeper.positions[BTC]
        await rig.tick(2)

        await the_round_trip_booked(rig, Side.SHORT, (opened, opened - 200))
        assert rig.keeper.positions[BTC] == ours
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1
        closed_at = rig.server.state.mark(BTC_MARKET)
        await by_hand(rig, "web_close_2", OrderSide.SELL, ours.quantity)
        await rig.tick(2)
        trades = await rig.repository.closed_trades()
        assert [(t.side, t.exit_reason, t.exit_price) for t in trades[1:]] == [
            (Side.LONG, ExitReason.MANUAL, closed_at)
        ]


async def test_a_round_trip_and_our_entry_within_one_look_books_the_round_trip() -> None:
    """A person opened and closed BTC, then our entry filled there, all between two looks:
    the look finds our long, and the stream's events since BTC's flat read make it read the
    trades up to our entry's first fill — the round trip booked, left out of the long's
    reads after (seed 40223's family: a later replay took them for an addition)."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        opened = await round_trip(rig, OrderSide.BUY, 300)
        await advance(rig.server, 1)
        await rig.enter()
        ours = rig.keeper.positions[BTC]
        await rig.tick(2)

        await the_round_trip_booked(rig, Side.LONG, (opened, opened + 300))
        assert rig.keeper.positions[BTC] == ours
        reads = sum(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests)
        await rig.tick(3)
        assert len(await rig.repository.closed_trades()) == 1
        assert sum(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests) == reads


async def test_a_round_trip_before_our_entry_booked_as_the_daemon_stopped_is_booked_after_it() -> (
    None
):
    """The same with the daemon stopped right after our entry was booked, before any look
    read the trades (the restart campaign with round trips, seed 40290): the last run's
    saved flat read of BTC, whose run our entry ended, is read after the start up to our
    entry's first fill — the round trip booked, our long kept."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        opened = await round_trip(rig, OrderSide.SELL, 120)
        await advance(rig.server, 1)
        await rig.enter()
        ours = rig.keeper.positions[BTC]
        await rig.restart()
        await rig.tick()

        await the_round_trip_booked(rig, Side.SHORT, (opened, opened + 120))
        assert rig.keeper.positions[BTC] == ours
        await rig.tick(2)
        await rig.restart()
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1


async def test_a_round_trip_booked_before_our_entry_is_not_booked_again_after_a_restart() -> None:
    """The saved read our entry ended reaches back to where BTC's run of flat reads began,
    before a round trip a look already booked: its trades stay left out (the trades of
    positions gone, saved), so the restart books nothing again."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        opened = await round_trip(rig, OrderSide.BUY, 250)
        await rig.tick()
        await the_round_trip_booked(rig, Side.LONG, (opened, opened + 250))
        await advance(rig.server, 1)
        await rig.enter()
        asked = len(rig.server.requests)
        await rig.restart()
        await rig.tick(3)

        assert len(await rig.repository.closed_trades()) == 1
        assert rig.keeper.positions[BTC].side is Side.LONG
        requests = rig.server.requests[asked:]
        read = [p for _, path, p in requests if path == "/fapi/v1/userTrades"]
        opened_ms = int(rig.server.state.trades[0]["time"])  # the round trip's first trade
        starts = [
            int(p["startTime"]) for p in read if p["symbol"] == "BTCUSDT" and "startTime" in p
        ]
        assert any(start <= opened_ms for start in starts)  # the read before our entry, made


async def test_a_round_trip_after_a_start_while_the_user_stream_is_down_is_booked() -> None:
    """The daemon started with the user-data stream down (the restart campaign, seed
    40345: seeded only two minutes in): the looks keep the last run's read of BTC while
    the stream is unusable, and that read — the last run's, restored — was never taken for
    a read since: a round trip by hand after the second look, never booked. It is read
    once the stream is back, like any flat read the stream says may have moved."""
    async with keeper_on_streams(StandinKeeper) as rig:  # its first tick read BTC flat
        now_ms = rig.server.state.now_ms
        rig.server.outage(Outage("/fapi/v1/listenKey", now_ms, now_ms + 20_000))
        assert await rig.server.streams.disconnect("user") == 1
        await settle(rig.server)
        await rig.restart()  # the first look after the start: the stream down
        await rig.tick()  # the second: what was done while stopped read (nothing)
        opened = await round_trip(rig, OrderSide.BUY, 180)
        await rig.tick()
        assert not rig.streams.health().usable
        await advance_until(rig.server, lambda: rig.streams.health().usable, 60, "reseeded")
        await rig.tick()

        await the_round_trip_booked(rig, Side.LONG, (opened, opened + 180))
        await rig.tick(2)
        assert len(await rig.repository.closed_trades()) == 1
