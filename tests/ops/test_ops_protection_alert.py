"""A position the keeper cannot protect as planned is notified, not only logged: on the
testnet runtime against the loopback Binance stand-in, a stop cancelled by hand and an exit
Binance refuses (-4131) reach the webhook as one `protection_failed` notification naming the
symbol and the refusal, while the keeper puts a stop back on the exchange; a refusal met on
every tick is told once, then once an interval."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
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
from quantum_trader.config import Settings
from quantum_trader.keeper.alerts import ProtectionAlert, tell
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import NotifySettings, ServerSettings

__all__ = ["loopback"]
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
PERCENT_PRICE = "The counterparty's best price does not meet the PERCENT_PRICE filter limit."


def notifying(tmp_path: Path, receiver: Receiver) -> Settings:
    """The stand-in daemon's settings, notifying `receiver` by webhook."""
    return daemon_settings(
        tmp_path,
        server=ServerSettings(enabled=False),
        notify=NotifySettings(webhook_url=SecretStr(receiver.url), backoff_initial_s=0.01),
    )


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
    settings = notifying(tmp_path, receiver)
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


async def test_a_refusal_met_every_tick_is_notified_once_then_once_an_interval(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """A symbol whose every stop is refused meets the refusal on each 5 s tick: was one
    notification a tick (an outside probe: 4,149 in 47 s of a paper daemon at 600×). The
    first goes out at once, the rest once every ten minutes of the trading clock, saying how
    many were held back; another symbol's, or another kind, is told at once."""
    receiver = Receiver()
    settings = notifying(tmp_path, receiver)
    clock = clock_into_bar(loopback)
    start = clock.now()
    try:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
            await open_operations(runtime, Metrics(), stack)
            listeners = runtime.core.keeper.alert_listeners
            for tick in range(301):  # 25 minutes of 5 s ticks
                at = start + timedelta(seconds=5 * tick)
                tell(listeners, ProtectionAlert(at, BTC, "protective_stop_failed", "refused"))
            tell(listeners, ProtectionAlert(start, ETH, "protective_stop_failed", "refused"))
            tell(listeners, ProtectionAlert(start, BTC, "exit_rejected_unprotected", "refused"))
        alerts = [r.body for r in receiver.received if r.body.get("kind") == "protection_failed"]
    finally:
        receiver.close()
    told = sorted((a["symbol"], a["event"], a["detail"]) for a in alerts)
    first, second = ((start + timedelta(minutes=m)).isoformat(timespec="seconds") for m in (0, 10))
    held = "refused (119 more like it since {}, not sent one by one)"
    assert told == sorted(
        [
            (BTC, "protective_stop_failed", "refused"),
            (BTC, "protective_stop_failed", held.format(first)),
            (BTC, "protective_stop_failed", held.format(second)),
            (ETH, "protective_stop_failed", "refused"),
            (BTC, "exit_rejected_unprotected", "refused"),
        ]
    )
