"""A position the keeper cannot protect as planned is notified, not only logged: on the
testnet runtime against the loopback Binance stand-in, a stop cancelled by hand and an exit
Binance refuses (-4131) reach the webhook as one `protection_failed` notification naming the
symbol and the refusal, while the keeper puts a stop back on the exchange."""

from __future__ import annotations

from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

from loopback import Fault, LoopbackBinance
from loopback.fixtures import (
    clock_into_bar,
    daemon_settings,
    loopback,
    open_runtime_on,
)
from ops_builders import Receiver
from pydantic import SecretStr

from quantum_trader.app_ops import open_operations
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import NotifySettings, ServerSettings

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"
PERCENT_PRICE = "The counterparty's best price does not meet the PERCENT_PRICE filter limit."


def working_stops(server: LoopbackBinance) -> list[dict[str, Any]]:
    return [
        o
        for o in server.state.algo_orders.values()
        if o["algoStatus"] == "NEW" and o["orderType"] == "STOP_MARKET"
    ]


async def test_an_exit_refused_without_a_stop_is_notified(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    receiver = Receiver()
    settings = daemon_settings(
        tmp_path,
        server=ServerSettings(enabled=False),
        notify=NotifySettings(webhook_url=SecretStr(receiver.url), backoff_initial_s=0.01),
    )
    clock = clock_into_bar(loopback)
    try:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
            await open_operations(runtime, Metrics(), stack)
            summary = await runtime.core.executor.run_cycle(clock.now())
            assert summary.opened == 1
            position = runtime.core.keeper.positions[BTC]
            [stop] = working_stops(loopback)
            stop["algoStatus"] = "CANCELED"  # by hand
            below = position.stop_price * Decimal("0.995")  # past the stop: a full exit
            loopback.state.marks["BTCUSDT"] = below
            loopback.inject(Fault("/fapi/v1/order", code=-4131, msg=PERCENT_PRICE, method="POST"))
            clock.advance(5)
            await runtime.core.keeper.tick(clock.now())
            assert len(working_stops(loopback)) == 1  # a stop is back on the exchange
        alerts = [r.body for r in receiver.received if r.body.get("kind") == "protection_failed"]
    finally:
        receiver.close()
    [alert] = alerts
    assert alert["symbol"] == BTC
    assert alert["event"] == "exit_rejected_unprotected"
    assert "-4131" in alert["detail"]
    assert "PROTECTION FAILED" in alert["text"]
