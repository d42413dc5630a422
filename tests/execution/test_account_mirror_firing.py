"""A seed keeps a stop of ours the mirror holds firing (TRIGGERING, TRIGGERED) that the REST
read leaves out: GET openAlgoOrders may not list firing orders (Binance does not say), the
rule `recheck.mirror_difference` applies already (such an order is no difference). It stays
listed until its end event, or until a lookup by id says it ended (`apply_lookups`: its end
event may have been lost in the gap the seed closes). Was: a reseed for any other reason (a
reconnect, a position that differed) dropped it from the mirror until its end event, so the
keeper saw a stop executing as missing. Pure; on the stand-in through the keeper:
tests/execution/test_firing_stop_reseed_on_standin.py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    Order,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.execution.account_mirror import AccountMirror
from quantum_trader.execution.binance_events import AlgoUpdate, parse_user_event

BTC = "BTC/USDT:USDT"
OURS = "qt-s-BTC-a-1"
A_PERSONS = "web_stop_1"
NOW = datetime(2025, 11, 1, 12, 30, tzinfo=UTC)
T0 = ms_from_utc(NOW) - 10_000
HELD = {BTC: ExchangePosition(BTC, Side.LONG, Decimal("0.010"), Decimal(100000), 5)}


def algo_update(status: str, t: int, cid: str, executed: str | None = None) -> AlgoUpdate:
    body: dict[str, Any] = {
        "caid": cid, "aid": 9, "o": "STOP_MARKET", "s": "BTCUSDT", "S": "SELL",
        "q": "0.010", "X": status, "ai": "", "tp": "95000", "R": True,
    }  # fmt: skip
    if executed is not None:
        body |= {"aq": executed, "ap": "94900"}
    event = parse_user_event({"e": "ALGO_UPDATE", "E": t, "T": t, "o": body}, {"BTCUSDT": BTC})
    assert isinstance(event, AlgoUpdate)
    return event


def at(ms: int) -> datetime:
    return utc_from_ms(ms)


def firing_mirror(*cids: str) -> AccountMirror:
    """A mirror that saw each of `cids` placed, then triggered, 5 s before NOW."""
    mirror = AccountMirror(replay_s=300, keep_final_s=3600)
    mirror.seed(ExchangeSnapshot(at(T0), SnapshotSource.REST, HELD, ()), {BTC: 5})
    for cid in cids:
        mirror.apply(algo_update("NEW", T0 + 1_000, cid), at(T0 + 1_000))
        mirror.apply(algo_update("TRIGGERING", T0 + 5_000, cid), at(T0 + 5_000))
    return mirror


def reseeded(mirror: AccountMirror, *listed: Order, **orders: Order) -> ExchangeSnapshot:
    """`mirror` seeded from a REST read sent after the trigger's event (which it shows, and
    is not re-applied), listing `listed`, reporting `orders` final."""
    read = ExchangeSnapshot(at(T0 + 8_000), SnapshotSource.REST, HELD, listed, orders)
    mirror.seed(read, {BTC: 5})
    return mirror.snapshot(NOW)


def open_ids(snapshot: ExchangeSnapshot) -> list[str]:
    return [o.client_order_id for o in snapshot.open_conditional_orders]


def test_a_seed_keeps_a_stop_of_ours_firing_that_the_read_leaves_out() -> None:
    mirror = firing_mirror(OURS, A_PERSONS)
    before = mirror.snapshot(NOW)
    [kept] = reseeded(mirror).open_conditional_orders
    assert kept == before.orders[OURS]  # as the stream last told it: firing since then
    assert kept.triggered_at == at(T0 + 5_000)
    assert open_ids(mirror.snapshot(NOW)) == [OURS]  # a person's: dropped, as before


def test_a_seed_drops_a_resting_stop_the_read_leaves_out_as_before() -> None:
    mirror = AccountMirror(replay_s=300, keep_final_s=3600)
    mirror.seed(ExchangeSnapshot(at(T0), SnapshotSource.REST, HELD, ()), {BTC: 5})
    mirror.apply(algo_update("NEW", T0 + 1_000, OURS), at(T0 + 1_000))
    assert open_ids(reseeded(mirror)) == []  # cancelled by hand, its event lost


def test_a_seed_takes_the_read_where_it_lists_the_stop_or_reports_it_ended() -> None:
    listed = firing_mirror(OURS).snapshot(NOW).orders[OURS]
    assert reseeded(firing_mirror(OURS), listed).open_conditional_orders == (listed,)
    ended = algo_update("FINISHED", T0 + 7_000, OURS, executed="0.010").order
    after = reseeded(firing_mirror(OURS), **{OURS: ended})
    assert open_ids(after) == []
    assert after.orders[OURS].status is OrderStatus.FILLED


def test_a_kept_stop_ends_with_its_end_event() -> None:
    mirror = firing_mirror(OURS)
    reseeded(mirror)
    mirror.apply(algo_update("FINISHED", T0 + 9_000, OURS, executed="0.010"), at(T0 + 9_000))
    ended = mirror.snapshot(NOW)
    assert open_ids(ended) == []
    assert ended.orders[OURS].status is OrderStatus.FILLED


def test_a_kept_stop_ends_when_a_lookup_says_it_ended_and_stays_ended() -> None:
    """Its end event lost in the gap the seed closed: the keeper's lookup by id (each tick
    while it is listed firing) is the word that ends it."""
    mirror = firing_mirror(OURS)
    firing = reseeded(mirror).orders[OURS]
    filled = algo_update("FINISHED", T0 + 6_000, OURS, executed="0.010").order
    mirror.apply_lookups({OURS: firing})  # still firing: nothing to change
    assert open_ids(mirror.snapshot(NOW)) == [OURS]

    mirror.apply_lookups({OURS: filled})
    ended = mirror.snapshot(NOW)
    assert open_ids(ended) == []
    assert ended.orders[OURS] == filled
    late = algo_update("TRIGGERED", T0 + 9_500, OURS)  # a late copy cannot bring it back
    mirror.apply(late, at(T0 + 9_500))
    assert open_ids(mirror.snapshot(NOW)) == []


def test_a_kept_stop_the_exchange_no_longer_knows_is_dropped() -> None:
    mirror = firing_mirror(OURS)
    reseeded(mirror)
    mirror.apply_lookups({OURS: None, "qt-s-BTC-a-9": None})
    assert open_ids(mirror.snapshot(NOW)) == []
    assert OURS not in mirror.snapshot(NOW).orders


def test_a_lookup_does_not_end_a_resting_order_nor_add_one_not_mirrored() -> None:
    mirror = AccountMirror(replay_s=300, keep_final_s=3600)
    mirror.seed(ExchangeSnapshot(at(T0), SnapshotSource.REST, HELD, ()), {BTC: 5})
    mirror.apply(algo_update("NEW", T0 + 1_000, OURS), at(T0 + 1_000))
    mirror.apply_lookups({OURS: None})  # an answer that raced the placement: the stream's word
    assert open_ids(mirror.snapshot(NOW)) == [OURS]
    other = algo_update("FINISHED", T0 + 6_000, "qt-s-BTC-a-2", executed="0.010").order
    mirror.apply_lookups({"qt-s-BTC-a-2": other})
    assert "qt-s-BTC-a-2" not in mirror.snapshot(NOW).orders
