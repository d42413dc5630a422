"""A stop of ours placed for one side fills after a person flipped the position and flipped it
back: it closed the side the person opened, not the one the books hold (the hand-trading
campaign's seed 31013, 2026-12-04: our short's old BUY stop, still resting when the keeper
adopted the long a flip by hand opened, fired after a flip back by hand and was booked against
that long, BREAK_EVEN at the stop's price; the person's sell that closed the long, and the
short it opened and our stop closed, were not booked). Now replayed from the account's
trades with our stop's fills among them (keeper/exit_replay_settle.py `_other_side_exits`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, fee_paid, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on
from test_keeper_round_trip import stops_of_ours, trade
from test_keeper_stop_fired_unseen import _FiresAfterPositions

from quantum_trader.domain import ExitReason, OrderSide, OrderStatus, Side
from quantum_trader.keeper.ids import Purpose
from quantum_trader.storage.memory import InMemoryRepository

OTHER_SIDE = "exit_filled_other_side"


async def flipped_and_back(
    harness: Harness,
    back: Decimal,
    *,
    after_positions: bool = False,
    then: Decimal = Decimal("96.5"),  # above the default stop of what is held after
) -> tuple[Decimal, str, str]:
    """Our long at 100 (its stop at 97, its take-profit at 106) flipped by hand at 101 and
    adopted as a short, the cancel of our old stop failing once (the symbol's other
    actions wait for the next tick: the old take-profit rests too); then bought back by hand
    at 99, `back` × the quantity, and the mark to `then`: at 96.5 the old stop fires — now,
    or with `after_positions` right after the next tick's read of the positions. The
    quantity, the old stop, the entry."""
    exchange = harness.exchange
    quantity = await opened(harness)
    [entry] = sent(exchange, Purpose.ENTRY)
    [old_stop] = stops_of_ours(harness)
    exchange.move(BTC, Decimal(101))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    exchange.cancels_malformed = 1  # the old stop outlives the adoption (31013: a 503)
    await harness.tick()
    assert harness.keeper.positions[BTC].side is Side.SHORT
    assert exchange.orders[old_stop].status is OrderStatus.OPEN
    harness.advance(timedelta(seconds=1))  # the person's trades a second after the tick
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_flip_2", OrderSide.BUY, back * quantity)
    if isinstance(exchange, _FiresAfterPositions) and after_positions:
        exchange.fire_at = then
    else:
        exchange.move(BTC, then)
    return quantity, old_stop, entry


async def test_our_old_stop_filled_after_a_flip_back_closes_the_side_the_person_opened() -> None:
    """The adopted short closed by the person's buy at 99 (MANUAL), the long that buy opened
    closed by our old stop at 97 (SL_HIT), nothing held, every fee paid booked once (was:
    the short closed SL_HIT at 97, the long missing, the buy's fee missing)."""
    harness = await Harness.start()
    quantity, old_stop, entry = await flipped_and_back(harness, Decimal(2))
    assert harness.exchange.orders[old_stop].status is OrderStatus.FILLED
    with capture_logs() as logs:
        await harness.tick()
        await harness.tick()

    long, ours, short = sorted(
        await harness.repository.closed_trades(), key=lambda t: t.entry_price
    )
    assert (ours.side, ours.exit_reason) == (Side.LONG, ExitReason.MANUAL)
    assert (short.side, short.entry_price, short.exit_price, short.exit_reason) == (
        Side.SHORT,
        Decimal(101),
        Decimal(99),
        ExitReason.MANUAL,
    )
    assert (long.side, long.quantity, long.entry_price, long.exit_price, long.exit_reason) == (
        Side.LONG,
        quantity,
        Decimal(99),
        Decimal(97),
        ExitReason.SL_HIT,
    )
    assert long.pnl_usdt == -2 * quantity - long.fees_usdt - long.funding_usdt
    paid = sum(fee_paid(harness, c) for c in (entry, "web_flip_1", "web_flip_2", old_stop))
    assert ours.fees_usdt + short.fees_usdt + long.fees_usdt == paid
    assert harness.keeper.positions == {}
    assert stops_of_ours(harness) == []  # the adopted short's stop cancelled
    [said] = [e for e in logs if e["event"] == OTHER_SIDE]
    assert old_stop in said["detail"]
    assert "replayed" in said["detail"]


async def test_our_old_stop_that_reduced_what_the_person_bought_back_leaves_the_rest_adopted() -> (
    None
):
    """Bought back three times the quantity: a long of twice it opened at 99, our old stop
    sold one at 97. The long held now is adopted with that loss realized and its stop
    placed."""
    harness = await Harness.start()
    quantity, _, _ = await flipped_and_back(harness, Decimal(3))
    await harness.tick()

    _, short = await harness.repository.closed_trades()
    assert (short.side, short.exit_price, short.exit_reason) == (
        Side.SHORT,
        Decimal(99),
        ExitReason.MANUAL,
    )
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        quantity,
        Decimal(99),
    )
    assert position.initial_quantity == 2 * quantity
    assert position.realized_pnl_usdt == -2 * quantity
    [stop] = stops_of_ours(harness)
    assert harness.exchange.orders[stop].side is OrderSide.SELL


async def test_when_the_trades_cannot_be_read_the_old_stop_is_booked_as_before_and_said() -> None:
    """The account's trades unreadable: one warning line naming our order, and the fill
    booked against the position (its quantity and fee kept, the books flat as the exchange)."""
    harness = await Harness.start()
    _, old_stop, _ = await flipped_and_back(harness, Decimal(2))
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()

    [said] = [e for e in logs if e["event"] == OTHER_SIDE]
    assert said["log_level"] == "warning"
    assert old_stop in said["detail"]
    assert "could not be read" in said["detail"]
    _, short = await harness.repository.closed_trades()
    assert (short.side, short.exit_price) == (Side.SHORT, Decimal(97))
    assert short.fees_usdt >= fee_paid(harness, old_stop)
    assert harness.keeper.positions == {}


async def test_our_old_stop_filled_after_the_positions_were_read_is_replayed_from_a_new_read() -> (
    None
):
    """The old stop fires right after the tick's read of the positions (the long the person
    bought back still held there): the positions are read again before the trades are
    replayed (was, before that check: the run of trades without our stop's fill matched the
    long read, which was adopted and our fill taken for booked — the long then closed at the
    mark on the next tick, MANUAL, the stop's fee lost)."""
    exchange = _FiresAfterPositions(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    quantity, old_stop, _ = await flipped_and_back(harness, Decimal(2), after_positions=True)
    with capture_logs() as logs:
        await harness.tick()

    assert exchange.orders[old_stop].status is OrderStatus.FILLED
    assert "exit_fill_checked_by_rest" in [e["event"] for e in logs]
    assert harness.keeper.positions == {}
    long = min(await harness.repository.closed_trades(), key=lambda t: t.entry_price)
    assert (long.side, long.quantity, long.exit_price, long.exit_reason) == (
        Side.LONG,
        quantity,
        Decimal(97),
        ExitReason.SL_HIT,
    )
    assert long.fees_usdt == fee_paid(harness, "web_flip_2") / 2 + fee_paid(harness, old_stop)


async def test_our_old_take_profit_filled_after_a_flip_back_is_booked_tp_hit() -> None:
    """The mark up to 106 instead: our long's old take-profit, resting beside the old stop,
    sells the long the person bought back (the adopted short's stop, a BUY, executes
    nothing on a long): that long closed TP_HIT at 106, the short MANUAL at 99."""
    harness = await Harness.start()
    quantity, _, _ = await flipped_and_back(harness, Decimal(2), then=Decimal(106))
    await harness.tick()

    long, _, short = sorted(await harness.repository.closed_trades(), key=lambda t: t.entry_price)
    assert (short.side, short.exit_price, short.exit_reason) == (
        Side.SHORT,
        Decimal(99),
        ExitReason.MANUAL,
    )
    assert (long.side, long.quantity, long.entry_price, long.exit_price, long.exit_reason) == (
        Side.LONG,
        quantity,
        Decimal(99),
        Decimal(106),
        ExitReason.TP_HIT,
    )
    assert harness.keeper.positions == {}
