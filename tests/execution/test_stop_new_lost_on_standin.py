"""Our stop accepted by the exchange whose NEW event the user-data stream never delivers.

The by-hand campaign's stop check (tests/campaign/by_hand_stops.py, 2026-12-06, night) found
the keeper placing another stop at each tick while the streams' mirror did not list the one
it had placed, until the 20 s check read REST and cancelled the extra ones: up to seven stops
of ours open at once on a symbol, where Binance keeps ten algo orders a symbol at most. The
keeper looks such a stop up by its id each tick, and now lists it as the lookup finds it
(keeper/firing.py `with_looked_up_open`)."""

from __future__ import annotations

from loopback import RandomStreamFaults
from standin_keeper import EnteringKeeper, keeper_on_streams
from structlog.testing import capture_logs

from quantum_trader.keeper.ids import is_ours


async def test_our_stop_whose_new_event_is_lost_is_not_placed_again() -> None:
    async with keeper_on_streams(EnteringKeeper) as rig:
        rig.server.streams.random = RandomStreamFaults(
            seed=1, drop_new_stops=1.0, new_stops_of=is_ours
        )
        with capture_logs() as logs:
            await rig.enter()
            await rig.tick(3)  # 15 s: before the 20 s check of positions reads REST

        assert len(rig.sent("STOP_MARKET")) == 1
        stops = [o for o in rig.open_orders() if o[0] == "STOP_MARKET"]
        assert stops == [("STOP_MARKET", "SELL", "0.003", "97000")]
        placed = [e.get("why") for e in logs if e["event"] == "protective_stop_placed"]
        assert placed == ["ENTRY"]
        assert rig.server.streams.hidden, "the stop's NEW event was dropped"
