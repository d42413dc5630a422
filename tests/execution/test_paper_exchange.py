"""Paper exchange behaviour: fills, margin, rejections, reduce-only, funding, triggers."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pytest
from paper_builders import (
    BTC,
    ETH,
    NO_SLIPPAGE,
    T0,
    Row,
    at,
    conditional,
    flat_rows,
    make_bars,
    make_exchange,
    make_funding,
    market,
)

from quantum_trader.clock import ManualClock, ms_from_utc, utc_from_ms
from quantum_trader.domain import OrderKind, OrderRequest, OrderSide, OrderStatus, ReasonCode, Side
from quantum_trader.errors import MarketDataError, OrderRejected
from quantum_trader.execution.paper import PaperExchange, default_market_rules
from quantum_trader.execution.paper_ledger import usdt
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import FundingSeries
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

BUY, SELL = OrderSide.BUY, OrderSide.SELL
STOP, TP = OrderKind.STOP_MARKET, OrderKind.TAKE_PROFIT_MARKET
TICK = Decimal("0.1")
TAKER = Decimal("0.0004")
SLIP = Decimal("0.0002")


def rows(overrides: dict[int, Row] | None = None, price: float = 20000.0) -> list[Row]:
    """300 flat 5m bars (25 h) with some bars replaced."""
    result = flat_rows(price, 300)
    for index, row in (overrides or {}).items():
        result[index] = row
    return result


def taker(price: str, side: OrderSide) -> Decimal:
    """Expected fill: 2 bps against the taker, rounded to the tick against the taker."""
    base = Decimal(price)
    if side is BUY:
        return (base * (1 + SLIP) / TICK).to_integral_value(ROUND_CEILING) * TICK
    return (base * (1 - SLIP) / TICK).to_integral_value(ROUND_FLOOR) * TICK


def exchange_at(
    minutes: float, overrides: dict[int, Row] | None = None, **kwargs: object
) -> tuple[ManualClock, PaperExchange]:
    clock = ManualClock(at(minutes))
    bars = {BTC: make_bars(BTC, rows(overrides))}
    return clock, make_exchange(clock, bars, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("side", "position_side"), [(BUY, Side.LONG), (SELL, Side.SHORT)])
async def test_market_order_fills_at_the_next_price_plus_slippage_and_fee(
    side: OrderSide, position_side: Side
) -> None:
    clock = ManualClock(at(7))
    bars = make_bars(BTC, [(20000, 20010, 19990, 20005), (20010, 20020, 20000, 20015)])
    paper = make_exchange(clock, {BTC: bars})

    order = await paper.place_order(market("e1", side, "0.1"))

    expected_price = taker("20010", side)
    expected_fee = (Decimal("0.1") * expected_price * TAKER).quantize(Decimal("1e-8"))
    assert order.status is OrderStatus.FILLED
    assert order.average_price == expected_price
    assert order.fee_usdt == expected_fee
    assert order.filled_quantity == Decimal("0.1")
    fills = await paper.fetch_fills(BTC, "e1")
    assert [(f.price, f.quantity, f.fee_usdt) for f in fills] == [
        (expected_price, Decimal("0.1"), expected_fee)
    ]
    (position,) = await paper.fetch_positions()
    assert (position.side, position.quantity, position.entry_price) == (
        position_side,
        Decimal("0.1"),
        expected_price,
    )
    assert (await paper.fetch_balance()).wallet_usdt == Decimal(10000) - expected_fee
    assert await paper.fetch_order(BTC, "e1") == order


async def test_price_is_the_open_of_the_current_bar_then_the_last_close_then_none() -> None:
    clock = ManualClock(at(0))
    bars = make_bars(BTC, [(100, 110, 90, 105), (106, 120, 100, 115)])
    paper = make_exchange(clock, {BTC: bars})
    assert await paper.fetch_mark_prices([BTC]) == {BTC: Decimal(100)}
    clock.set(at(5))
    assert await paper.fetch_mark_prices([BTC]) == {BTC: Decimal(106)}
    clock.set(at(14))  # one bar late: still the last close
    assert await paper.fetch_mark_prices([BTC]) == {BTC: Decimal(115)}
    clock.set(at(60))  # the data stopped: no price, no fill (untradeable)
    assert await paper.fetch_mark_prices([BTC]) == {}
    with pytest.raises(OrderRejected, match="untradeable"):
        await paper.place_order(market("e1", BUY, "0.1"))
    assert (await paper.fetch_balance()).wallet_usdt > 0  # valuation still works
    with pytest.raises(MarketDataError):
        await paper.fetch_mark_prices(["NOPE/USDT:USDT"])


async def test_before_the_recording_there_is_no_price_and_orders_are_rejected() -> None:
    clock = ManualClock(at(-10))
    paper = make_exchange(clock, {BTC: make_bars(BTC, rows())})
    assert await paper.fetch_mark_prices([BTC]) == {}
    with pytest.raises(OrderRejected) as rejected:
        await paper.place_order(market("e1", BUY, "0.1"))
    assert rejected.value.reason is ReasonCode.ORDER_REJECTED


async def test_isolated_margin_is_notional_over_leverage() -> None:
    _, paper = exchange_at(0, balance="1000")
    with pytest.raises(OrderRejected) as rejected:
        await paper.place_order(market("e1", BUY, "0.05"))
    assert rejected.value.reason is ReasonCode.INSUFFICIENT_FREE_BALANCE
    assert (await paper.fetch_balance()).wallet_usdt == Decimal(1000)
    assert await paper.fetch_order(BTC, "e1") is None

    await paper.set_leverage(BTC, 2)
    order = await paper.place_order(market("e2", BUY, "0.05"))
    assert order.average_price is not None
    margin = Decimal("0.05") * order.average_price / 2
    balance = await paper.fetch_balance()
    assert balance.used_margin_usdt == margin
    assert balance.free_usdt == balance.wallet_usdt - margin
    (position,) = await paper.fetch_positions()
    assert (position.leverage, position.margin_usdt) == (2, margin)


async def test_a_positions_margin_follows_its_leverage_and_its_fills() -> None:
    """The ledger keeps the positions' margins from one fill or change of leverage to the
    next (`Ledger._held_margins`): a new leverage or a fill margins a position afresh."""
    _, paper = exchange_at(0, balance="1000")
    await paper.set_leverage(BTC, 2)
    first = await paper.place_order(market("e1", BUY, "0.02"))
    assert first.average_price is not None
    assert (await paper.fetch_balance()).used_margin_usdt == usdt(
        Decimal("0.02") * first.average_price / 2
    )
    await paper.set_leverage(BTC, 4)
    assert (await paper.fetch_balance()).used_margin_usdt == usdt(
        Decimal("0.02") * first.average_price / 4
    )
    await paper.place_order(market("e2", BUY, "0.02"))
    (position,) = await paper.fetch_positions()
    margin = usdt(position.quantity * position.entry_price / 4)
    assert position.quantity == Decimal("0.04")
    assert (await paper.fetch_balance()).used_margin_usdt == position.margin_usdt == margin


async def test_lowering_leverage_needs_free_margin_and_leverage_is_capped() -> None:
    _, paper = exchange_at(0, balance="1000")
    await paper.set_leverage(BTC, 2)
    await paper.place_order(market("e1", BUY, "0.09"))
    with pytest.raises(OrderRejected) as too_low:
        await paper.set_leverage(BTC, 1)
    assert too_low.value.reason is ReasonCode.INSUFFICIENT_FREE_BALANCE
    assert (await paper.fetch_positions())[0].leverage == 2
    with pytest.raises(OrderRejected) as too_high:
        await paper.set_leverage(BTC, 21)
    assert too_high.value.reason is ReasonCode.LEVERAGE_TOO_HIGH
    with pytest.raises(OrderRejected) as unknown:
        await paper.set_leverage("NOPE/USDT:USDT", 2)
    assert unknown.value.reason is ReasonCode.UNKNOWN_SYMBOL


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (market("x", BUY, "0.01", symbol="NOPE/USDT:USDT"), ReasonCode.UNKNOWN_SYMBOL),
        (market("x", BUY, "0.0105"), ReasonCode.BAD_PRECISION),
        (market("x", BUY, "0.001"), ReasonCode.BELOW_MIN_QUANTITY),
        (market("x", BUY, "0.002"), ReasonCode.BELOW_MIN_NOTIONAL),
        (market("x", BUY, "1"), ReasonCode.INSUFFICIENT_FREE_BALANCE),
        (market("x", SELL, "0.01", reduce_only=True), ReasonCode.ORDER_REJECTED),
        (conditional("x", STOP, SELL, "0.01", "19000.05"), ReasonCode.BAD_PRECISION),
        (conditional("x", STOP, SELL, "0.01", "20100"), ReasonCode.ORDER_REJECTED),
        (conditional("x", TP, SELL, "0.01", "19900"), ReasonCode.ORDER_REJECTED),
        (conditional("x", STOP, BUY, "0.01", "19900"), ReasonCode.ORDER_REJECTED),
        (
            conditional("x", STOP, SELL, "0.01", "19000", reduce_only=False),
            ReasonCode.ORDER_REJECTED,
        ),
    ],
)
async def test_each_rejection_has_its_code_and_leaves_the_account_alone(
    request_: object, reason: ReasonCode
) -> None:
    assert isinstance(request_, OrderRequest)
    _, paper = exchange_at(0, balance="1000")
    with pytest.raises(OrderRejected) as rejected:
        await paper.place_order(request_)
    assert rejected.value.reason is reason
    assert await paper.fetch_order(request_.symbol, "x") is None
    assert (await paper.fetch_balance()).wallet_usdt == Decimal(1000)
    assert await paper.fetch_open_conditional_orders() == []


async def test_duplicate_client_order_id_is_rejected_across_both_books() -> None:
    _, paper = exchange_at(0)
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19000"))
    for duplicate in (market("s1", BUY, "0.1"), conditional("e1", STOP, SELL, "0.1", "19000")):
        with pytest.raises(OrderRejected, match="duplicate client order id") as rejected:
            await paper.place_order(duplicate)
        assert rejected.value.reason is ReasonCode.ORDER_REJECTED


async def test_at_most_ten_conditional_orders_per_symbol() -> None:
    _, paper = exchange_at(0)
    for number in range(10):
        await paper.place_order(conditional(f"s{number}", STOP, SELL, "0.01", "19000"))
    with pytest.raises(OrderRejected):
        await paper.place_order(conditional("s10", STOP, SELL, "0.01", "19000"))


async def test_reduce_only_never_increases_or_flips() -> None:
    _, paper = exchange_at(0)
    await paper.place_order(market("e1", BUY, "0.1"))
    with pytest.raises(OrderRejected, match="increase"):
        await paper.place_order(market("r0", BUY, "0.01", reduce_only=True))
    small = await paper.place_order(market("r1", SELL, "0.002", reduce_only=True))
    assert small.filled_quantity == Decimal("0.002")  # below min notional: exempt
    clipped = await paper.place_order(market("r2", SELL, "0.5", reduce_only=True))
    assert clipped.status is OrderStatus.FILLED
    assert clipped.filled_quantity == Decimal("0.098")
    assert await paper.fetch_positions() == []


async def test_an_opposite_plain_order_closes_then_opens_the_rest() -> None:
    _, paper = exchange_at(0, costs=NO_SLIPPAGE)
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(market("e2", SELL, "0.3"))
    (position,) = await paper.fetch_positions()
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        Decimal("0.2"),
        Decimal(20000),
    )
    totals = paper.totals
    assert totals.realized_pnl_usdt == 0
    assert totals.fees_usdt == Decimal("0.4") * 20000 * TAKER


@pytest.mark.parametrize(("side", "paid"), [(BUY, Decimal("0.2")), (SELL, Decimal("-0.2"))])
async def test_funding_longs_pay_a_positive_rate_and_shorts_receive_it(
    side: OrderSide, paid: Decimal
) -> None:
    clock = ManualClock(at(0))
    funding = {BTC: make_funding([at(-480), at(480), at(960)], [0.01, 0.0001, -0.0002])}
    paper = make_exchange(clock, {BTC: make_bars(BTC, rows())}, funding=funding)
    await paper.place_order(market("e1", side, "0.1"))
    wallet = (await paper.fetch_balance()).wallet_usdt
    clock.set(at(600))
    assert await paper.fetch_funding_paid(BTC, T0) == paid
    assert (await paper.fetch_balance()).wallet_usdt == wallet - paid
    clock.set(at(1000))
    assert await paper.fetch_funding_paid(BTC, at(481)) == -2 * paid
    assert paper.totals.funding_usdt == -paid


async def test_sell_stop_triggers_on_the_low_and_fills_at_the_trigger() -> None:
    clock, paper = exchange_at(0, {5: (20000, 20000, 19400, 19600)})
    await paper.place_order(market("e1", BUY, "0.1"))
    stop = await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19500"))
    assert stop.status is OrderStatus.OPEN
    clock.set(at(60))
    filled = await paper.fetch_order(BTC, "s1")
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    assert filled.average_price == taker("19500", SELL)
    assert filled.updated_at == at(30)
    assert filled.fee_usdt == (Decimal("0.1") * taker("19500", SELL) * TAKER).quantize(
        Decimal("1e-8")
    )
    assert await paper.fetch_positions() == []
    assert await paper.fetch_open_conditional_orders() == []
    (fill,) = await paper.fetch_fills(BTC, "s1")
    assert (fill.price, fill.time) == (taker("19500", SELL), at(30))


@pytest.mark.parametrize(
    ("entry", "kind", "exit_side", "trigger", "bar", "expected"),
    [
        (BUY, STOP, SELL, "19500", (19000, 19100, 18900, 19050), "19000"),
        (BUY, TP, SELL, "20500", (20000, 20600, 19900, 20500), "20500"),
        (BUY, TP, SELL, "20500", (21000, 21100, 20900, 21000), "21000"),
        (SELL, STOP, BUY, "20500", (21000, 21100, 20900, 21000), "21000"),
        (SELL, STOP, BUY, "20500", (20000, 20600, 19900, 20000), "20500"),
        (SELL, TP, BUY, "19500", (19000, 19100, 18900, 19050), "19000"),
    ],
)
async def test_triggers_fill_at_the_trigger_or_the_open_on_a_gap(
    entry: OrderSide,
    kind: OrderKind,
    exit_side: OrderSide,
    trigger: str,
    bar: Row,
    expected: str,
) -> None:
    clock, paper = exchange_at(0, {5: bar})
    await paper.place_order(market("e1", entry, "0.1"))
    await paper.place_order(conditional("c1", kind, exit_side, "0.1", trigger))
    clock.set(at(24))
    assert len(await paper.fetch_open_conditional_orders()) == 1
    clock.set(at(30))
    order = await paper.fetch_order(BTC, "c1")
    assert order is not None
    assert (order.status, order.average_price) == (OrderStatus.FILLED, taker(expected, exit_side))
    assert await paper.fetch_positions() == []


async def test_stop_wins_when_stop_and_take_profit_trigger_in_one_bar() -> None:
    clock, paper = exchange_at(0, {5: (20000, 20600, 19400, 20000)})
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("tp", TP, SELL, "0.1", "20500"))
    await paper.place_order(conditional("sl", STOP, SELL, "0.1", "19500"))
    clock.set(at(60))
    stop, take_profit = await paper.fetch_order(BTC, "sl"), await paper.fetch_order(BTC, "tp")
    assert stop is not None
    assert take_profit is not None
    assert stop.status is OrderStatus.FILLED
    assert stop.average_price == taker("19500", SELL)
    assert take_profit.status is OrderStatus.EXPIRED


async def test_a_trigger_with_no_position_expires() -> None:
    clock, paper = exchange_at(0, {5: (20000, 20000, 19400, 19600)})
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19500"))
    await paper.place_order(market("x1", SELL, "0.1", reduce_only=True))
    wallet = (await paper.fetch_balance()).wallet_usdt
    clock.set(at(60))
    stop = await paper.fetch_order(BTC, "s1")
    assert stop is not None
    assert stop.status is OrderStatus.EXPIRED
    assert await paper.fetch_fills(BTC, "s1") == []
    assert (await paper.fetch_balance()).wallet_usdt == wallet


async def test_conditional_orders_are_listed_and_cancelled_apart_from_plain_orders() -> None:
    _, paper = exchange_at(0)
    await paper.place_order(market("e1", BUY, "0.1"))
    stop = await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19000"))
    take_profit = await paper.place_order(conditional("t1", TP, SELL, "0.1", "21000"))
    assert await paper.fetch_open_conditional_orders(BTC) == [stop, take_profit]
    assert await paper.fetch_open_conditional_orders(ETH) == []
    entry = await paper.fetch_order(BTC, "e1")
    assert entry is not None
    assert entry.kind is OrderKind.MARKET
    assert await paper.fetch_order(ETH, "s1") is None

    await paper.cancel_conditional_order(BTC, "s1")
    canceled = await paper.fetch_order(BTC, "s1")
    assert canceled is not None
    assert canceled.status is OrderStatus.CANCELED
    assert await paper.fetch_open_conditional_orders() == [take_profit]
    for symbol, order_id in ((BTC, "s1"), (BTC, "e1"), (BTC, "nope"), (ETH, "t1")):
        with pytest.raises(OrderRejected):
            await paper.cancel_conditional_order(symbol, order_id)


@pytest.mark.parametrize(("funding_minute", "paid"), [(25, True), (30, False)])
async def test_funding_and_triggers_are_processed_in_time_order(
    funding_minute: int, paid: bool
) -> None:
    clock = ManualClock(at(0))
    funding = {BTC: make_funding([at(funding_minute)], [0.001])}
    bars = {BTC: make_bars(BTC, rows({5: (20000, 20000, 19400, 19600)}))}
    paper = make_exchange(clock, bars, funding=funding)
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19500"))
    clock.set(at(120))
    expected = Decimal("0.1") * 20000 * Decimal("0.001") if paid else Decimal(0)
    assert await paper.fetch_funding_paid(BTC, T0) == expected


async def test_triggers_across_symbols_are_filled_in_time_order() -> None:
    clock = ManualClock(at(0))
    bars = {
        BTC: make_bars(BTC, rows({8: (20000, 20000, 19400, 19600)})),
        ETH: make_bars(ETH, rows({3: (20000, 20000, 19400, 19600)})),
    }
    paper = make_exchange(clock, bars)
    for symbol in (BTC, ETH):
        await paper.place_order(market(f"e-{symbol}", BUY, "0.1", symbol=symbol))
        await paper.place_order(
            conditional(f"s-{symbol}", STOP, SELL, "0.1", "19500", symbol=symbol)
        )
    clock.set(at(240))
    (btc_fill,) = await paper.fetch_fills(BTC, f"s-{BTC}")
    (eth_fill,) = await paper.fetch_fills(ETH, f"s-{ETH}")
    assert eth_fill.time < btc_fill.time
    assert int(eth_fill.trade_id.removeprefix("paper-t")) < int(
        btc_fill.trade_id.removeprefix("paper-t")
    )


async def test_unrealized_pnl_follows_the_current_price() -> None:
    clock, paper = exchange_at(0, {3: (20100, 20100, 20100, 20100)}, costs=NO_SLIPPAGE)
    await paper.place_order(market("e1", BUY, "0.1"))
    clock.set(at(15))
    balance = await paper.fetch_balance()
    assert balance.unrealized_pnl_usdt == Decimal("10")
    assert balance.equity_usdt == balance.wallet_usdt + 10


def test_default_market_rules_cover_the_bundled_symbols() -> None:
    symbols = [f"{b}/USDT:USDT" for b in ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "BCH", "INJ")]
    rules = default_market_rules(symbols)
    assert sorted(rules) == sorted(symbols)
    assert rules[BTC].tick_size == Decimal("0.1")
    assert rules[BTC].min_notional == Decimal(100)
    assert all(r.min_quantity >= r.step_size > 0 and r.max_leverage >= 20 for r in rules.values())
    with pytest.raises(MarketDataError):
        default_market_rules(["PEPE/USDT:USDT"])


async def test_a_gap_in_the_recording_has_no_price_and_fills_a_stop_at_the_open() -> None:
    clock = ManualClock(at(0))
    early = make_bars(BTC, [(20000, 20000, 20000, 20000)] * 3)
    late = make_bars(BTC, [(19000, 19100, 18900, 19000)] * 3, start_ms=early.time_ms[0] + 3_600_000)
    joined = make_bars(
        BTC,
        [(20000, 20000, 20000, 20000)] * 3 + [(19000, 19100, 18900, 19000)] * 3,
    )
    gapped = type(joined)(
        BTC,
        joined.timeframe_ms,
        np.concatenate([early.time_ms, late.time_ms]),
        joined.open,
        joined.high,
        joined.low,
        joined.close,
        joined.volume,
    )
    paper = make_exchange(clock, {BTC: gapped})
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("s1", STOP, SELL, "0.1", "19500"))
    clock.set(at(30))  # three bars missing: untradeable, no stale fill at 20000
    assert await paper.fetch_mark_prices([BTC]) == {}
    with pytest.raises(OrderRejected, match="untradeable"):
        await paper.place_order(market("x1", SELL, "0.1", reduce_only=True))
    assert len(await paper.fetch_open_conditional_orders(BTC)) == 1
    clock.set(at(70))
    stop = await paper.fetch_order(BTC, "s1")
    assert stop is not None
    assert (stop.status, stop.average_price, stop.updated_at) == (
        OrderStatus.FILLED,
        taker("19000", SELL),
        at(65),
    )


async def test_the_bundled_sample_trades_with_the_default_rules() -> None:
    store = CandleStore(bundled_sample_dir())
    symbols = store.available_symbols("5m")
    bars = {s: store.load_bars(s, "5m") for s in symbols}
    funding = {s: FundingSeries.from_rates(*store.load_funding(s)) for s in symbols}
    clock = ManualClock(utc_from_ms(int(bars[BTC].time_ms[100])))
    rules = default_market_rules(symbols)
    paper = PaperExchange(
        rules=rules,
        costs=CostModel(CostSettings()),
        clock=clock,
        initial_balance_usdt=Decimal(20000),
        bars=bars,
        funding=funding,
    )
    prices = await paper.fetch_mark_prices(symbols)
    for number, symbol in enumerate(symbols):
        quantity = rules[symbol].round_quantity_down(Decimal(1000) / prices[symbol])
        order = await paper.place_order(
            OrderRequest(f"e{number}", symbol, SELL, OrderKind.MARKET, quantity)
        )
        assert order.status is OrderStatus.FILLED
        assert order.average_price is not None
        assert rules[symbol].is_price_precise(order.average_price)
    clock.advance(3 * 86_400)
    assert len(await paper.fetch_positions()) == len(symbols)
    paid = [await paper.fetch_funding_paid(s, utc_from_ms(0)) for s in symbols]
    assert any(amount != 0 for amount in paid)


async def test_idle_and_the_revision_follow_every_order() -> None:
    """`idle`: nothing open; `revision` moves with every order, fill and funding payment (a
    backtest repeats steps while both stand still: replay_quiet.py)."""
    _, paper = exchange_at(0)
    fresh = paper.revision
    assert paper.idle
    await paper.place_order(conditional("s1", STOP, SELL, "0.01", "19000"))
    assert not paper.idle  # an open stop
    await paper.cancel_conditional_order(BTC, "s1")
    assert paper.idle
    placed = paper.revision
    assert placed != fresh
    await paper.place_order(market("e1", BUY, "0.1"))
    assert not paper.idle  # a position
    await paper.place_order(market("x1", SELL, "0.1", reduce_only=True))
    assert paper.idle
    assert paper.revision not in (fresh, placed)


async def test_a_quiet_view_answers_as_the_account_would_until_something_is_due() -> None:
    """`quiet_view`: the balance, positions, open orders and marks the calls would answer,
    without catching up, while no trigger or funding falls due; None once one does."""
    clock, paper = exchange_at(0, {40: (20000.0, 20000.0, 18000.0, 19000.0)})
    await paper.place_order(market("e1", BUY, "0.1"))
    await paper.place_order(conditional("s1", STOP, SELL, "0.1", "18500"))
    clock.set(at(35 * 5))
    seen = paper.quiet_view(clock.now(), ms_from_utc(clock.now()))
    assert seen is not None
    assert paper.balance_at(seen.marks) == await paper.fetch_balance()
    assert seen.marks == await paper.fetch_mark_prices([BTC])
    assert list(seen.snapshot.positions.values()) == await paper.fetch_positions()
    listed = await paper.fetch_open_conditional_orders()
    assert list(seen.snapshot.open_conditional_orders) == listed
    assert (
        paper.quiet_view(at(45 * 5), ms_from_utc(at(45 * 5))) is None
    )  # the stop triggers on bar 40
