"""A full exit refused while no stop of ours covers the position: a stop goes on at once.

The stop maths decides a full exit on a tick where the protective stop is missing (cancelled
by hand, or its request lost or refused earlier). The exit goes first, without a stop: it is
the protection, and a stop at a level the mark has passed would be refused (-2021). If the
exchange refuses the exit for good (Binance -4131 PERCENT_PRICE on a thin book, an OrderRejected,
not a transient RetryLater), a reduce-only stop for the whole position is placed in the same
tick, at a trigger Binance accepts, and the exit is retried every tick while the stop stays.
Shown on the model exchange and end to end through the ccxt adapter on the loopback stand-in;
with the neighbours of the case: a refused stop whose emergency exit is refused too, and
`close_all` when the close is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, SYMBOLS, T0, Harness, sized
from test_keeper_scenarios import open_stops, ours

from quantum_trader.domain import ExitReason, OrderSide, OrderStatus, Side
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]
REFUSED = "exit_rejected_unprotected"


def errors(logs: Sequence[Mapping[str, Any]], event: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == event and e["log_level"] == "error"]


async def unprotected_position(side: Side) -> tuple[Harness, Decimal]:
    """A position entered at 100 whose stop a person cancelled; returns its quantity."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    await harness.keeper.enter(sized(BTC, side, exchange.marks[BTC]), harness.now)
    [stop_id] = ours(exchange, Purpose.STOP)
    exchange.orders[stop_id] = replace(exchange.orders[stop_id], status=OrderStatus.CANCELED)
    return harness, exchange.held[BTC][1]


@pytest.mark.parametrize(
    ("side", "mark", "trigger"),
    [
        # stop 97.00 passed: 0.2 % beyond the mark 96.50 is 96.307, down to the tick
        (Side.LONG, Decimal("96.50"), Decimal("96.30")),
        # stop 103.00 passed: 103.50 + 0.2 % = 103.707, up to the tick
        (Side.SHORT, Decimal("103.50"), Decimal("103.71")),
    ],
)
async def test_a_refused_full_exit_without_a_stop_places_one_the_mark_has_not_reached(
    side: Side, mark: Decimal, trigger: Decimal
) -> None:
    harness, quantity = await unprotected_position(side)
    exchange = harness.exchange
    exchange.move(BTC, mark)  # past the managed stop: the stop maths exits in full
    exchange.exits_refused_until = harness.now + timedelta(hours=1)

    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()
            assert open_stops(exchange, BTC) == [(quantity, trigger)]

    assert len(ours(exchange, Purpose.EXIT)) == 3  # retried every tick
    assert len(ours(exchange, Purpose.STOP)) == 2  # the entry's, then one more: never a third
    assert len(errors(logs, REFUSED)) == 1  # once: the next ticks' refusals find a stop
    assert len(errors(logs, "exit_rejected")) == 2
    assert harness.keeper.positions[BTC].quantity == quantity

    exchange.exits_refused_until = None
    await harness.tick()
    assert BTC not in exchange.held
    assert BTC not in harness.keeper.positions
    assert open_stops(exchange, BTC) == []


async def test_the_stop_placed_after_a_refused_exit_closes_the_position_at_its_trigger() -> None:
    harness, _ = await unprotected_position(Side.LONG)
    exchange = harness.exchange
    exchange.move(BTC, Decimal("96.50"))
    exchange.exits_refused_until = harness.now + timedelta(hours=1)
    await harness.tick()

    exchange.move(BTC, Decimal("96.20"))  # through the stop at 96.30: the exchange closes it
    await harness.tick()

    assert BTC not in exchange.held
    assert BTC not in harness.keeper.positions
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal("96.30")


async def test_a_refused_stop_after_a_refused_exit_sends_no_second_exit_and_is_retried() -> None:
    harness, quantity = await unprotected_position(Side.LONG)
    exchange = harness.exchange
    exchange.move(BTC, Decimal("96.50"))
    exchange.exits_refused_until = harness.now + timedelta(hours=1)
    exchange.stops_refused = True  # as -2021 when the mark moved past it while it travelled

    with capture_logs() as logs:
        await harness.tick()

    assert len(ours(exchange, Purpose.EXIT)) == 1  # no PROTECTION_FAILED exit on its heels
    [failed] = errors(logs, "protective_stop_failed")
    assert failed["why"] == "EXIT_REFUSED"
    assert open_stops(exchange, BTC) == []
    exchange.stops_refused = False
    await harness.tick()
    assert len(ours(exchange, Purpose.EXIT)) == 2
    assert open_stops(exchange, BTC) == [(quantity, Decimal("96.30"))]


async def test_a_refused_full_exit_with_a_stop_listed_places_no_other() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    harness.advance(timedelta(hours=MonitorSettings().max_hold_h))  # a time exit: in full
    exchange.exits_refused_until = harness.now + timedelta(hours=1)

    with capture_logs() as logs:
        for _ in range(2):
            await harness.tick()

    assert len(ours(exchange, Purpose.EXIT)) == 2
    assert len(ours(exchange, Purpose.STOP)) == 1  # the entry's stop protects
    assert errors(logs, REFUSED) == []
    assert len(errors(logs, "exit_rejected")) == 2


# -- end to end: the ccxt adapter against the loopback stand-in ------------------------------------

PERCENT_PRICE = "The counterparty's best price does not meet the PERCENT_PRICE filter limit."


async def test_binance_refusing_the_exit_with_4131_leaves_a_stop_it_accepts() -> None:
    async with LoopbackBinance() as server:
        exchange = connect(server)
        try:
            await refused_exit_on_the_stand_in(server, exchange)
        finally:
            await exchange.close()


async def refused_exit_on_the_stand_in(server: LoopbackBinance, exchange: CcxtExchange) -> None:
    rules = await exchange.load_markets()
    repository = InMemoryRepository()
    now = T0
    ledger = await Ledger.load(repository, Decimal(10_000), now, PerformanceSettings())
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, rules, KEEPER, MonitorSettings()
    )
    state = server.state
    await keeper.tick(now, rest=True)
    await keeper.enter(sized(BTC, Side.LONG, state.mark("BTCUSDT")), now)  # stop 97000.0
    [stop] = working_stops(server)
    stop["algoStatus"] = "CANCELED"  # by hand
    state.marks["BTCUSDT"] = Decimal("96500.0")  # past the stop: the keeper exits in full
    for _ in range(3):
        server.inject(Fault("/fapi/v1/order", code=-4131, msg=PERCENT_PRICE, method="POST"))
        now += timedelta(seconds=5)
        await keeper.tick(now)
        assert [(o["side"], o["triggerPrice"], o["quantity"]) for o in working_stops(server)] == [
            ("SELL", "96307", "0.003")
        ]
    assert state.holding("BTCUSDT").amount == Decimal("0.003")
    refused = [o for o in await repository.orders() if o.status is OrderStatus.REJECTED]
    assert len(refused) == 3
    assert all(o.detail.startswith("ORDER_REJECTED") and "-4131" in o.detail for o in refused)

    now += timedelta(seconds=5)
    await keeper.tick(now)  # Binance takes the exit again
    assert state.holding("BTCUSDT").amount == 0
    assert working_stops(server) == []


def working_stops(server: LoopbackBinance) -> list[dict[str, Any]]:
    return [
        o
        for o in server.state.algo_orders.values()
        if o["algoStatus"] == "NEW" and o["orderType"] == "STOP_MARKET"
    ]


async def test_a_refused_stop_and_a_refused_exit_leave_the_other_symbols_actions_done() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    for symbol in SYMBOLS:  # positions opened by hand: the tick adopts and protects them
        exchange.by_hand(symbol, OrderSide.BUY, Decimal("1.5"))
    exchange.reject_next = True  # the first stop (BTC's) is refused ...
    exchange.exits_refused_until = harness.now + timedelta(minutes=1)  # ... and its exit too

    with capture_logs() as logs:
        assert await harness.tick()

    assert [e["event"] for e in errors(logs, "protective_stop_failed")] == [
        "protective_stop_failed"
    ]
    assert len(errors(logs, "exit_rejected")) == 1
    assert open_stops(exchange, SYMBOLS[1]) == [(Decimal("1.5"), Decimal("48.50"))]
    await harness.tick()  # the next tick places BTC's stop
    assert open_stops(exchange, BTC) == [(Decimal("1.5"), Decimal("97.00"))]


async def test_close_all_keeps_the_stop_of_a_position_whose_close_is_refused() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    exchange.exits_refused_until = harness.now + timedelta(minutes=1)

    with capture_logs() as logs:
        await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    assert len(errors(logs, "close_failed")) == 1
    assert open_stops(exchange, BTC) == [(Decimal("3.000"), Decimal("97.00"))]
    exchange.exits_refused_until = None
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    assert BTC not in exchange.held
    assert [o for o in exchange.orders.values() if o.status is OrderStatus.OPEN] == []


async def test_protection_failures_reach_the_alert_listeners_and_a_broken_one_changes_nothing() -> (
    None
):
    harness, quantity = await unprotected_position(Side.LONG)
    exchange = harness.exchange
    heard: list[ProtectionAlert] = []

    def broken(alert: ProtectionAlert) -> None:
        raise RuntimeError("listener down")

    harness.keeper.alert_listeners.extend([broken, heard.append])
    exchange.move(BTC, Decimal("96.50"))
    exchange.exits_refused_until = harness.now + timedelta(hours=1)
    exchange.stops_refused = True

    with capture_logs() as logs:
        await harness.tick()

    assert [(a.symbol, a.event) for a in heard] == [
        (BTC, REFUSED),
        (BTC, "protective_stop_failed"),
    ]
    assert "EXIT_REFUSED" in heard[1].detail
    assert len(errors(logs, "protection_alert_listener_failed")) == 2
    exchange.stops_refused = False
    await harness.tick()  # the tick went on as without listeners: the stop is placed now
    assert open_stops(exchange, BTC) == [(quantity, Decimal("96.30"))]
