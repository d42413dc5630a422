"""Orders booked while their fills could not be read: their fees are read on later ticks, or
before their position's trade is booked, and count once (keeper/fees.py).

The model exchange answers as Binance does here (`answers_without_fees`: an order's answer
and lookups carry no commission, only its fills do), so a fee the keeper did not read is
missing from the books, not silently taken from the answer.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, PRICES, SYMBOLS, T0, Harness, sized

from quantum_trader.domain import (
    ZERO,
    ClosedTrade,
    ExitReason,
    Fill,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
    SizedOrder,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.book import TradeRef
from quantum_trader.keeper.fees import FEES_UNREAD, fee_due, remembered
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.record import replace

BTC = SYMBOLS[0]
PERFORMANCE = PerformanceSettings()


def fee_of(exchange: ModelExchange, client_order_id: str) -> Decimal:
    fills = exchange.fills[client_order_id]
    assert fills
    return sum((f.fee_usdt for f in fills), ZERO)


def sent(exchange: ModelExchange, purpose: Purpose) -> list[str]:
    return [
        r.client_order_id for r in exchange.received if purpose_of(r.client_order_id) is purpose
    ]


async def entered(harness: Harness, *, unreadable: int, with_fees: bool = False) -> str:
    """Enter BTC long with the entry's fills unreadable for the next `unreadable` reads; the
    entry's client order id."""
    exchange = harness.exchange
    exchange.answers_without_fees = not with_fees
    exchange.fills_unreadable = unreadable
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    return entry


async def stop_reached(harness: Harness) -> tuple[SizedOrder, str, str]:
    """Enter BTC long (answers without fees), then move the mark past the entry's stop, which
    the next tick finds filled: the sized order, the entry's and the stop's client order ids."""
    exchange = harness.exchange
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.answers_without_fees = True
    await harness.keeper.enter(order, harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    stop_id = harness.keeper.positions[BTC].stop_order_id
    assert stop_id is not None
    exchange.move(BTC, order.stop_price - Decimal(1))
    return order, entry, stop_id


async def test_an_entry_whose_fills_are_read_a_tick_later_has_their_fee_once() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1)
    assert harness.keeper.positions[BTC].fees_usdt == 0  # booked from the answer alone
    assert set(harness.keeper.book.fees_unread) == {entry}
    assert set(await harness.repository.load_state(FEES_UNREAD)) == {entry}

    with capture_logs() as logs:
        for _ in range(4):
            await harness.tick()

    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry) > 0
    assert exchange.fills_asked.count(entry) == 2  # the answer's read, then one tick's
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    assert [f.trade_id for f in await harness.repository.fills()] == [
        f.trade_id for f in exchange.fills[entry]
    ]
    [read] = [e for e in logs if e["event"] == "fees_read"]
    assert entry in read["detail"]


async def test_the_reads_are_one_an_order_a_tick_and_end_with_one_warning_after_the_bound() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=10_000)
    ticks = int(KEEPER.fees_unread_give_up_s / 5) + 3
    with capture_logs() as logs:
        for _ in range(ticks):
            await harness.tick()

    given_up = [e for e in logs if e["event"] == "fees_unread_given_up"]
    assert len(given_up) == 1
    assert given_up[0]["log_level"] == "warning"
    assert entry in given_up[0]["detail"]
    reads = exchange.fills_asked.count(entry)
    assert reads == 1 + KEEPER.fees_unread_give_up_s / 5  # the answer's, then one a tick
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    assert harness.keeper.positions[BTC].fees_usdt == 0


async def test_fees_unread_until_the_close_are_read_before_its_trade_is_booked() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=3)  # the answer's read and two ticks'
    await harness.tick()
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == 0
    # close_all reconciles first (one more failed read), then the exit, then the close reads
    exchange.fills_unreadable = 1
    with capture_logs() as logs:
        await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    [exit_] = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, exit_)
    assert [e for e in logs if e["event"] == "trade_fees_incomplete"] == []
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    await harness.tick()
    assert exchange.fills_asked.count(entry) == 5  # nothing read once the trade is booked


async def test_a_close_whose_fees_stay_unreadable_is_booked_and_says_so_once() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=10_000)
    await harness.tick()
    with capture_logs() as logs:
        await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    [exit_] = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == 0
    [incomplete] = [e for e in logs if e["event"] == "trade_fees_incomplete"]
    assert incomplete["log_level"] == "warning"
    assert incomplete["symbol"] == BTC
    assert incomplete["entry_order_id"] == entry == trade.entry_order_id
    assert sorted(incomplete["orders"]) == sorted([entry, exit_])
    remembered_now = harness.keeper.book.fees_unread  # against the trade, to amend it later
    assert set(remembered_now) == {entry, exit_}
    assert {u.trade for u in remembered_now.values()} == {trade_ref(trade)}
    assert set(await harness.repository.load_state(FEES_UNREAD)) == {entry, exit_}


def trade_ref(trade: ClosedTrade) -> TradeRef:
    risk = abs(trade.entry_price - sized(BTC, Side.LONG, PRICES[BTC]).stop_price) * trade.quantity
    return TradeRef(trade.symbol, trade.entry_order_id, trade.closed_at, trade.fees_usdt, risk)


async def closed_with_the_exit_fills_unread(harness: Harness) -> tuple[str, str, ClosedTrade]:
    """BTC entered (its fills read), the mark up 0.05 %, closed by hand while the exit's
    fills cannot be read (its answer's read and the close's): entry, exit, the trade booked.
    The trade's gross 0.15 USDT is a win without the exit's fee, a loss with it."""
    exchange = harness.exchange
    entry = await entered(harness, unreadable=0)
    exchange.move(BTC, Decimal("100.05"))
    await harness.tick()
    exchange.fills_unreadable = 2
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    [exit_] = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry)
    assert trade.pnl_usdt == Decimal("0.15") - fee_of(exchange, entry) > 0
    return entry, exit_, trade


async def ledger_on(harness: Harness) -> Ledger:
    """The ledger as a restart finds it (what the gates read after one)."""
    return await Ledger.load(harness.repository, Decimal(10_000), harness.now, PERFORMANCE)


async def test_a_trade_closed_with_its_exit_fee_unread_is_amended_once_when_it_is_read() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    ledger = harness.keeper._carrier._ledger  # the one the gates read
    assert ledger.stats[BTC].wins == 1
    assert ledger.tracker.losing_streak == 0
    assert set(harness.keeper.book.fees_unread) == {exit_}

    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()

    fee = fee_of(exchange, exit_)
    risk = trade_ref(booked).risk_usdt
    pnl = booked.pnl_usdt - fee
    assert pnl < 0
    amended = replace(
        booked, fees_usdt=booked.fees_usdt + fee, pnl_usdt=pnl, r_multiple=float(pnl / risk)
    )
    assert await harness.repository.closed_trades() == [amended]
    [said] = [e for e in logs if e["event"] == "trade_fees_amended"]
    assert said["log_level"] == "info"
    assert (said["symbol"], said["entry_order_id"]) == (BTC, entry)
    assert (said["orders"], said["fee_usdt"]) == ([exit_], str(fee))
    assert exchange.fills_asked.count(exit_) == 3  # the answer's, the close's, one tick's
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    assert exit_ in {f.client_order_id for f in await harness.repository.fills()}
    for stats in (ledger.stats[BTC], (await ledger_on(harness)).stats[BTC]):
        assert (stats.trades, stats.wins, stats.losses, stats.streak) == (1, 0, 1, -1)
        assert stats.pnl_usdt == float(pnl)
        assert stats.last_20_r == (float(pnl / risk),)
        assert stats.total_r == float(pnl / risk)
    for tracker in (ledger.tracker, (await ledger_on(harness)).tracker):
        assert tracker.losing_streak == 1
        assert tracker.last_loss_at == booked.closed_at
        assert tracker.recent_pnl == ((booked.closed_at, pnl),)


async def test_a_trade_is_amended_after_a_restart_and_never_twice() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    await harness.restart()  # a new keeper over the same repository
    assert set(harness.keeper.book.fees_unread) == {exit_}
    assert harness.keeper.book.fees_unread[exit_].trade == trade_ref(booked)
    await harness.tick()
    [amended] = await harness.repository.closed_trades()
    assert amended.fees_usdt == booked.fees_usdt + fee_of(exchange, exit_)
    stats = harness.keeper._carrier._ledger.stats[BTC]

    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()
        await harness.tick()

    assert await harness.repository.closed_trades() == [amended]
    assert "trade_fees_amended" not in [e["event"] for e in logs]
    assert harness.keeper._carrier._ledger.stats[BTC] == stats
    assert exchange.fills_asked.count(exit_) == 3


async def test_an_amendment_written_before_its_orders_were_forgotten_is_not_made_again() -> None:
    """A stop between the trade's amendment and forgetting its orders: the next run reads
    them again and finds the trade amended already."""
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    [saved] = (await harness.repository.load_state(FEES_UNREAD)).values()
    await harness.tick()
    [amended] = await harness.repository.closed_trades()
    stats = harness.keeper._carrier._ledger.stats[BTC]
    await harness.repository.save_state(FEES_UNREAD, exit_, saved)  # as the stop left it
    await harness.restart()

    with capture_logs() as logs:
        await harness.tick()

    assert await harness.repository.closed_trades() == [amended] != [booked]
    events = [e["event"] for e in logs]
    assert "trade_fees_amended" not in events
    assert "trade_fees_amended_already" in events
    assert harness.keeper._carrier._ledger.stats[BTC] == stats
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    assert exchange.fills_asked.count(exit_) == 4


async def test_a_trade_whose_fees_stay_unread_past_the_bound_is_not_amended() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    exchange.fills_unreadable = 10_000
    with capture_logs() as logs:
        for _ in range(int(KEEPER.fees_unread_give_up_s / 5) + 3):
            await harness.tick()

    [given_up] = [e for e in logs if e["event"] == "fees_unread_given_up"]
    assert given_up["log_level"] == "warning"
    assert exit_ in given_up["detail"]
    assert "closed trade" in given_up["detail"]
    assert "trade_fees_amended" not in [e["event"] for e in logs]
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    exchange.fills_unreadable = 0
    await harness.tick()
    assert await harness.repository.closed_trades() == [booked]


async def test_a_trade_with_two_orders_unread_is_amended_once_both_are_read() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=10_000)
    await harness.tick()
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    [exit_] = sent(exchange, Purpose.EXIT)
    [booked] = await harness.repository.closed_trades()
    assert booked.fees_usdt == 0
    exchange.fills_unreadable = 1  # the entry's read this tick (read first), not the exit's
    await harness.tick()
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.fees_unread[exit_].fee_read == fee_of(exchange, exit_)
    await harness.restart()  # what was read is kept
    exchange.fills_unreadable = 0
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, exit_)
    assert trade.pnl_usdt == booked.pnl_usdt - trade.fees_usdt
    [said] = [e for e in logs if e["event"] == "trade_fees_amended"]
    assert sorted(said["orders"]) == sorted([entry, exit_])
    assert exchange.fills_asked.count(exit_) == 3  # the answer's, the close's, one tick's
    assert harness.keeper.book.fees_unread == {}


async def test_a_fee_the_answer_carried_is_not_counted_again_when_the_fills_are_read() -> None:
    """The paper exchange's answers carry their fee: the fills read later add only what the
    answer lacked (nothing here), and the trade counts each order's fee once."""
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1, with_fees=True)
    entry_fee = fee_of(exchange, entry)
    assert harness.keeper.positions[BTC].fees_usdt == entry_fee  # from the answer
    await harness.tick()  # the fills read: nothing more due
    assert harness.keeper.positions[BTC].fees_usdt == entry_fee
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    [exit_] = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == entry_fee + fee_of(exchange, exit_)


async def test_a_fee_read_on_a_tick_is_not_read_or_added_again_at_the_close() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1)
    await harness.tick()  # read here
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    [exit_] = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, exit_)
    assert exchange.fills_asked.count(entry) == 2


async def test_unread_fees_survive_a_restart_and_are_read_once_after_it() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=2)
    await harness.tick()
    await harness.restart()
    assert set(harness.keeper.book.fees_unread) == {entry}
    await harness.tick()
    fee = fee_of(exchange, entry)
    assert harness.keeper.positions[BTC].fees_usdt == fee
    await harness.restart()
    await harness.tick()
    assert harness.keeper.book.fees_unread == {}
    assert harness.keeper.positions[BTC].fees_usdt == fee
    assert exchange.fills_asked.count(entry) == 3


async def test_a_stop_filled_while_its_fills_are_unreadable_is_booked_as_the_stop() -> None:
    """The tick books it from the exchange's word on the order (not as a close by hand at the
    mark) and reads its fee before the trade is booked."""
    harness = await Harness.start()
    exchange = harness.exchange
    order, entry, stop_id = await stop_reached(harness)
    exchange.fills_unreadable = 1  # the tick's read of the stop's fills
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, order.stop_price)
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, stop_id)
    events = [e["event"] for e in logs]
    assert "position_closed_externally" not in events
    assert "trade_fees_incomplete" not in events
    assert exchange.fills_asked.count(stop_id) == 2  # the tick's, then the close's
    assert BTC not in harness.keeper.positions
    assert harness.keeper.book.fees_unread == {}


async def test_a_lost_entry_answer_with_unreadable_fills_is_settled_and_its_fee_read_later() -> (
    None
):
    """The tick that finds the entry filled cannot read its fills: it settles the entry from
    the lookup (the symbol is free again) and reads the fee on the next tick."""
    harness = await Harness.start()
    exchange = harness.exchange
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.answers_without_fees = True
    exchange.lose_next = True
    exchange.reads_down_until = harness.now + timedelta(seconds=1)  # the lookup fails too
    await harness.keeper.enter(order, harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    assert BTC in harness.keeper.view().blocked
    exchange.fills_unreadable = 1
    await harness.tick()
    assert harness.keeper.view().blocked == {}
    assert set(harness.keeper.book.fees_unread) == {entry}
    position = harness.keeper.positions[BTC]
    assert (position.entry_order_id, position.stop_price) == (entry, order.stop_price)
    assert position.fees_usdt == 0
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry)
    assert harness.keeper.book.fees_unread == {}
    assert exchange.fills_asked.count(entry) == 2


def test_the_fee_due_is_the_fills_scaled_to_the_executed_quantity_less_the_fee_booked() -> None:
    """Fills short of what the order executed (Binance lists at most 1,000 trades of an order)
    are scaled up as `execution_of` scales them; the fee booked from the answer is deducted."""
    request = OrderRequest("qt-e-btc-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(4))
    order = replace(
        Order.pending(request, T0),
        status=OrderStatus.FILLED,
        filled_quantity=Decimal(4),
        average_price=Decimal(100),
        fee_usdt=Decimal("0.05"),
    )
    fill = Fill("1", order.client_order_id, BTC, OrderSide.BUY, Decimal(1), Decimal(100),
                Decimal("0.04"), T0)  # fmt: skip
    unread = remembered(order, order.fee_usdt, T0)
    assert fee_due(unread, [fill]) == Decimal("0.16") - Decimal("0.05")
