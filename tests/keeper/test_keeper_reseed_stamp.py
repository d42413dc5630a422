"""A keeper tick that reseeds the streams' mirror from REST stamps each read when it is sent,
on the clock that stamps the receipt of the user-data events, not with the tick's `now`.

Found by the campaign with a person trading by hand (seed 30079, 2026-12-03): our entry's
ACCOUNT_UPDATE arrived after the tick's `now`, the person closed the position 0.2 s after it
filled (that event was dropped), and the tick's REST read showed the position gone. The
snapshot was stamped with the tick's `now`, so the reseed re-applied the entry's event and the
mirror showed the position held again (the keeper no longer adopts it from such a mirror:
test_keeper_stale_view.py; here the mirror itself is checked). The mirror below is the real
one (execution/account_mirror.py) behind a stand-in for the streams, its clock a manual one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from model_exchange import ModelExchange
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0
from test_keeper_stream_gap import UsableMirror

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import ExchangePosition, ExchangeSnapshot, Side, SnapshotSource
from quantum_trader.execution.account_mirror import AccountMirror
from quantum_trader.execution.binance_events import parse_user_event
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]
IDS = {"BTCUSDT": BTC}


def account_update(amount: str, at: datetime) -> dict[str, Any]:
    """BTC's position as Binance's ACCOUNT_UPDATE reports it, its transaction at `at`."""
    row = {"s": "BTCUSDT", "pa": amount, "ep": "100", "up": "0", "iw": "30", "ps": "BOTH"}
    t = ms_from_utc(at)
    return {"e": "ACCOUNT_UPDATE", "E": t, "T": t, "a": {"m": "ORDER", "B": [], "P": [row]}}


class MirroredStreams(UsableMirror):
    """The streams' side of the keeper over the real account mirror: each event stamped with
    `clock` as it is received, a reseed made as BinanceStreams makes it."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self.mirror = AccountMirror(replay_s=300, keep_final_s=3600)
        self.mirror.seed(ExchangeSnapshot(clock.now(), SnapshotSource.REST, {}, ()), {BTC: 3})

    def now(self) -> datetime:
        return self.clock.now()

    def receive(self, payload: dict[str, Any]) -> None:
        event = parse_user_event(payload, IDS)
        assert event is not None
        self.mirror.apply(event, self.clock.now())

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        return None if self.mirror.needs_seed else self.mirror.snapshot(now)

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        super().reseed(snapshot)
        self.mirror.seed(snapshot, {BTC: 3})


class OpenedWhileRead(ModelExchange):
    """The model exchange on which a person opens a long on BTC just after the positions read
    was answered; its event reaches the streams then, before the open orders are read."""

    streams: MirroredStreams | None = None

    async def fetch_positions(self) -> list[ExchangePosition]:
        answer = await super().fetch_positions()
        streams = self.streams
        if streams is not None:
            streams.clock.advance(0.05)
            self.held[BTC] = (Side.LONG, Decimal("0.3"), Decimal(100))
            streams.receive(account_update("0.3", streams.clock.now()))
            self.streams = None
        return answer


async def keeper_on(exchange: ModelExchange, streams: MirroredStreams) -> PositionKeeper:
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    return await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=streams
    )


async def test_a_reseed_does_not_reapply_an_event_received_after_now_before_the_read() -> None:
    clock = ManualClock(T0)
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    streams = MirroredStreams(clock)
    keeper = await keeper_on(exchange, streams)
    clock.advance(60)
    now = clock.now()  # the tick's
    clock.advance(0.1)
    streams.receive(account_update("0.3", clock.now()))  # our entry's (the fill before `now`)
    clock.advance(0.2)  # the person's close: its event dropped; the exchange holds nothing
    await keeper.tick(now, rest=True)  # its read sent 0.3 s after `now`
    assert streams.reseeded, "REST (flat) differed from the mirror (held): reseeded"
    shown = streams.snapshot(clock.now())
    assert shown is not None
    assert shown.positions == {}, "the entry's event is older than the read: not re-applied"
    assert streams.reseeded[-1].taken_at == now + timedelta(seconds=0.3)  # when it was sent


async def test_a_reseed_reapplies_an_event_received_after_the_positions_were_read() -> None:
    clock = ManualClock(T0)
    exchange = OpenedWhileRead(RULES, dict(PRICES), T0)
    streams = MirroredStreams(clock)
    keeper = await keeper_on(exchange, streams)
    clock.advance(60)
    clock.advance(0.1)
    streams.receive(account_update("0.2", clock.now()))  # a position REST no longer lists
    exchange.streams = streams
    await keeper.tick(clock.now(), rest=True)
    assert streams.reseeded
    shown = streams.snapshot(clock.now())
    assert shown is not None
    assert shown.positions[BTC].quantity == Decimal("0.3"), "may be newer than the read: kept"
