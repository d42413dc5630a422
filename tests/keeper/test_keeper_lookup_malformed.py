"""An order lookup or cancel answered in a shape the adapter cannot read fails like one that
could not be made: the order stays unsettled (the cancel is tried again) and the tick goes on
with everything else. Was: the MarketDataError left the tick — a lookup's before its plan, a
cancel's in the middle of its actions — so while one order's answer stayed malformed no
position on any symbol (after it, for a cancel) was protected or booked (found reading
helper-55's adapter change, 2026-12-03). Time in keeper ticks (the model exchange; 5 s each)."""

from __future__ import annotations

from structlog.testing import capture_logs
from test_keeper_external_exits import by_hand, fee_paid, opened
from test_keeper_properties import SYMBOLS, Harness, sized

from quantum_trader.domain import ExitReason, OrderKind, OrderSide, OrderStatus, Side
from quantum_trader.errors import MarketDataError, OrderStateUnknown

BTC, ETH = SYMBOLS


async def test_a_malformed_lookup_of_one_order_leaves_the_other_positions_protected() -> None:
    """BTC's stop fires while its lookups answer malformed; meanwhile ETH's stop is cancelled
    by hand. The ticks protect ETH again at once and keep BTC awaiting its stop; once the
    lookup answers, BTC is booked SL_HIT at its stop, its fee counted."""
    harness = await Harness.start()
    exchange = harness.exchange
    await opened(harness)
    await harness.keeper.enter(sized(ETH, Side.LONG, exchange.marks[ETH]), harness.now)
    await harness.tick()
    btc, eth = harness.keeper.positions[BTC], harness.keeper.positions[ETH]
    assert btc.stop_order_id is not None
    assert eth.stop_order_id is not None
    stop = exchange.orders[btc.stop_order_id]
    assert stop.trigger_price is not None
    exchange.lookups_malformed = 3
    exchange.move(BTC, stop.trigger_price - 1)
    assert exchange.orders[stop.client_order_id].status is OrderStatus.FILLED
    await exchange.cancel_conditional_order(ETH, eth.stop_order_id)

    with capture_logs() as logs:
        await harness.tick()
    eth_stops = [
        o
        for o in exchange.orders.values()
        if o.symbol == ETH and o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN
    ]
    assert len(eth_stops) == 1  # protected again in the same tick
    assert BTC in harness.keeper.positions  # awaiting its stop's lookup
    failed = [e for e in logs if e["event"] == "order_lookup_failed"]
    assert stop.client_order_id in {e["client_order_id"] for e in failed}
    for _ in range(3):
        await harness.tick()

    assert BTC not in harness.keeper.positions
    assert ETH in harness.keeper.positions
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, stop.trigger_price)
    assert trade.fees_usdt == btc.fees_usdt + fee_paid(harness, stop.client_order_id)


async def test_a_lost_entry_answer_whose_lookup_is_malformed_is_unknown_not_an_error() -> None:
    """An entry's answer is lost and the lookup right after it answers malformed: the entry's
    outcome is unknown (a blind stop over it, settled by a later tick), as
    when the lookup cannot be made — the executor is not handed a MarketDataError for an
    order that was sent."""
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.lose_next = True
    exchange.lookups_malformed = 1
    try:
        result = await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    except (MarketDataError, OrderStateUnknown) as error:  # pragma: no cover - the defect
        raise AssertionError(f"the entry raised {error!r}") from error
    assert result.unknown
    assert harness.keeper.positions[BTC].stop_order_id is not None  # the blind stop
    await harness.tick()
    assert harness.keeper.positions[BTC].side is Side.LONG
    assert harness.keeper.positions[BTC].stop_order_id is not None
    assert [r.side for r in exchange.received if r.symbol == BTC][:1] == [OrderSide.BUY]


async def test_a_malformed_cancel_of_one_symbols_stop_leaves_the_next_symbol_protected() -> None:
    """A person closes the BTC long (our stop is left open: the keeper cancels it) and cancels
    ETH's stop. BTC's cancel is answered malformed: ETH, after it in the tick's actions, is
    protected again in the same tick; the next tick cancels BTC's stop."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    await harness.keeper.enter(sized(ETH, Side.LONG, exchange.marks[ETH]), harness.now)
    await harness.tick()
    btc_stop = harness.keeper.positions[BTC].stop_order_id
    eth_stop = harness.keeper.positions[ETH].stop_order_id
    assert btc_stop is not None
    assert eth_stop is not None
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    await exchange.cancel_conditional_order(ETH, eth_stop)
    exchange.cancels_malformed = 1

    with capture_logs() as logs:
        await harness.tick()
    assert _open_stops(harness, ETH) == 1
    assert exchange.orders[btc_stop].status is OrderStatus.OPEN  # its cancel failed
    assert any(e["event"] == "order_action_failed" for e in logs)
    await harness.tick()
    assert exchange.orders[btc_stop].status is OrderStatus.CANCELED
    assert BTC not in harness.keeper.positions


def _open_stops(harness: Harness, symbol: str) -> int:
    return sum(
        1
        for o in harness.exchange.orders.values()
        if o.symbol == symbol and o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN
    )
