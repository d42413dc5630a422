"""A protective stop that fired while Binance does not list its trades yet, end to end.

The ccxt adapter on the loopback stand-in, whose userTrades lists a trade only `LAG` after it
(Binance documents no bound; its order query reports the order as it stands). The keeper
books the close once, as the stop (SL_HIT) at its fill price, and never takes the stop for
gone (`protective_stop_gone`, a new stop, a close booked as someone else's); its fee is read
once the trades are listed. Was: the stop's lookup built its outcome from the trades alone,
none listed → EXPIRED with nothing executed.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs
from test_keeper_properties import SYMBOLS, T0
from test_keeper_stop_not_done import algo, long_on_the_stand_in

from quantum_trader.clock import ManualClock
from quantum_trader.domain import ExitReason

BTC = SYMBOLS[0]
LAG = timedelta(seconds=12)
FIRED_AT = Decimal("96900.0")  # the mark through the stop (97000): its fill price here


@pytest.mark.parametrize("order_read_fails", [False, True], ids=["order-read", "order-read-fails"])
async def test_a_stop_that_fired_before_its_trades_are_listed_is_booked_once_as_the_stop(
    order_read_fails: bool,
) -> None:
    clock = ManualClock(T0)
    async with LoopbackBinance(clock=clock) as server:
        server.state.trades_lag_ms = int(LAG.total_seconds() * 1000)
        exchange = connect(server)
        try:
            keeper, repository, stop = await long_on_the_stand_in(server, exchange, clock)
            server.state.marks["BTCUSDT"] = FIRED_AT  # through the stop: Binance triggers it
            server.sync()
            assert stop["algoStatus"] == "FINISHED"
            if order_read_fails:  # every lookup of the first tick fails (with its retries)
                for _ in range(6):
                    server.inject(Fault("/fapi/v1/order", status=503, body="busy", method="GET"))

            with capture_logs() as logs:
                for _ in range(5):  # 5 s ticks: the trades are listed from the third on
                    clock.set(clock.now() + timedelta(seconds=5))
                    await keeper.tick(clock.now())
        finally:
            await exchange.close()

    assert server.state.holding("BTCUSDT").amount == 0
    assert BTC not in keeper.positions
    events = [e["event"] for e in logs]
    assert "protective_stop_gone" not in events
    assert "position_closed_externally" not in events
    assert algo(server, "NEW") == []  # no stop placed again
    [trade] = await repository.closed_trades()
    assert (trade.quantity, trade.exit_reason, trade.exit_price) == (
        Decimal("0.003"),
        ExitReason.SL_HIT,
        FIRED_AT,
    )
    paid = sum(Decimal(t["commission"]) for t in server.state.trades)
    assert trade.fees_usdt == paid  # the entry's and the stop's, each once
