"""Our stop is firing (the stand-in holds it TRIGGERING, `Engine.stall_triggers`) when the
streams' mirror is seeded again for another reason, from a REST read whose GET openAlgoOrders
leaves firing orders out (the stand-in's default, `lists_firing` False; Binance does not say):
the user-data stream reconnects, or the keeper's check of the held symbol's orders finds one
the stream did not tell (a person's stop, its events lost: `stream_mirror_differs`). The seed
keeps the firing stop (execution/account_mirror.py), so the keeper waits for it as before:
no stop beside it, no exit racing it, no error line, and the close booked SL_HIT at its fill
once it runs, whether its end event comes or is lost (the lookup by id ends it in the
mirror). Through the ccxt adapter and BinanceStreams on the stand-in, the keeper ticked every
5 s as the monitor loop does.

Was: the seed dropped the firing stop from the mirror until its end event (the keeper saw it
as missing unless its lookup said otherwise), and a mirror that kept one whose end was lost
kept it for good.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from loopback.fixtures import advance_until, settle
from standin_keeper import EnteringKeeper, keeper_on_streams
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_triggering_stop_on_standin import THROUGH, exits_sent, fire_and_stall

from quantum_trader.domain import ExitReason, Order, OrderKind, OrderRequest, OrderSide
from quantum_trader.keeper.ids import is_ours

HOW = pytest.mark.parametrize("how", ["reconnect", "check-differs"])
END = pytest.mark.parametrize("end_event", [True, False], ids=["end-event", "end-event-lost"])
DROP_ALL = 1_000_000  # the stand-in's count of user events to drop: every one until reset


def mirrored_stop(rig: EnteringKeeper, client_order_id: str) -> Order | None:
    """Our stop among the mirror's open conditional orders, if listed."""
    mirrored = rig.streams.snapshot(rig.now())
    assert mirrored is not None
    listed = mirrored.open_conditional_orders
    return next((o for o in listed if o.client_order_id == client_order_id), None)


async def reseed(rig: EnteringKeeper, how: str) -> list[str]:
    """Seed the mirror again for `how`'s reason, ticking; the log events meanwhile."""
    server = rig.server
    with capture_logs() as logs:
        if how == "reconnect":
            assert await server.streams.disconnect("user") == 1
            await settle(server)
            await advance_until(server, lambda: rig.streams.health().usable, 30, "reseeded")
        else:  # a person's stop on BTC, far below, its events lost: the check of BTC's orders
            server.streams.faults.drop = DROP_ALL
            person = OrderRequest(
                "web_stop_1", BTC, OrderSide.SELL, OrderKind.STOP_MARKET, Decimal("0.003"),
                trigger_price=Decimal(50_000), reduce_only=True,
            )  # fmt: skip
            await rig.exchange.place_order(person)
            await settle(server)
            server.streams.faults.drop = 0
            for _ in range(5):  # the check of positions and BTC's orders: every 20 s
                await rig.tick()
                if any(e["event"] == "stream_mirror_differs" for e in logs):
                    break
    return [e["event"] for e in logs]


def losing_end_events(rig: EnteringKeeper) -> None:
    """The stand-in's ALGO_UPDATE FINISHED events never reach the client from now on."""
    hub, sinks = rig.server.streams, rig.server.state.sinks
    at = sinks.index(hub.on_user_event)

    def losing_the_end(event: dict[str, Any]) -> None:
        if event["e"] != "ALGO_UPDATE" or event["o"]["X"] != "FINISHED":
            hub.on_user_event(event)

    sinks[at] = losing_the_end


def stops_sent(rig: EnteringKeeper) -> int:
    """Our stops sent (not the person's)."""
    return sum(1 for p in rig.sent("STOP_MARKET") if is_ours(p["clientAlgoId"]))


def lookups(rig: EnteringKeeper, client_order_id: str) -> int:
    return sum(
        1
        for m, path, p in rig.server.requests
        if (m, path) == ("GET", "/fapi/v1/algoOrder") and p.get("clientAlgoId") == client_order_id
    )


@HOW
@END
async def test_a_reseed_keeps_our_stop_firing_until_it_ends(how: str, end_event: bool) -> None:
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        [stop] = rig.sent("STOP_MARKET")
        cid = stop["clientAlgoId"]
        fire_and_stall(rig.server, THROUGH)
        await rig.tick()
        assert mirrored_stop(rig, cid) is not None  # listed firing, as the stream told it

        with capture_logs() as logs:
            events = await reseed(rig, how)
            kept = mirrored_stop(rig, cid)
            await rig.tick()

        if how == "check-differs":
            assert "stream_mirror_differs" in events
        assert kept is not None  # the seed kept it, firing
        assert kept.triggered_at is not None
        assert (stops_sent(rig), exits_sent(rig.server)) == (1, [])
        errors = [e["event"] for e in logs if e["log_level"] in ("error", "critical")]
        assert errors == []

        if not end_event:
            losing_end_events(rig)
        rig.server.engine.resume_stalled()
        with capture_logs() as logs:
            await rig.tick()

        [trade] = await rig.repository.closed_trades()
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, THROUGH)
        assert BTC not in rig.keeper.positions
        assert (stops_sent(rig), exits_sent(rig.server)) == (1, [])
        assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
        assert mirrored_stop(rig, cid) is None  # ended: by its event, or by the lookup
        looked_up = lookups(rig, cid)
        await rig.tick(3)
        assert lookups(rig, cid) == looked_up  # no longer listed firing: not looked up again
        assert mirrored_stop(rig, cid) is None
