"""The account's trades booked for a position reduced by hand are remembered across restarts
in the repository's state (keeper/external_saved.py): on a real SQLite file, forgotten with
the position, and an entry that cannot be read back is said once and dropped, the keeper
starting all the same."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_booking_one_write import keeper_on
from test_keeper_properties import PRICES, RULES, T0, TICK, sized

from quantum_trader.domain import OrderKind, OrderRequest, OrderSide, Side
from quantum_trader.keeper.external_saved import EXTERNAL_BOOKED, ExternalBooked
from quantum_trader.storage.sqlite import SqliteRepository

BTC = "BTC/USDT:USDT"
LAST_EXIT = {  # as keeper/external_saved.py saves one
    "order": "qt-x-BTC-a-1",
    "reason": "TIME_EXIT",
    "price": "98",
    "time": "2025-06-01T00:00:05+00:00",
    "trade_id": "7",
}


async def reduce_by_hand(exchange: ModelExchange, name: str, quantity: Decimal) -> str:
    """A person's reduce-only sell on the exchange's site; its trade id."""
    request = OrderRequest(name, BTC, OrderSide.SELL, OrderKind.MARKET, quantity, reduce_only=True)
    await exchange.place_order(request)
    [fill] = exchange.fills[name]
    return fill.trade_id


async def test_the_trades_booked_survive_a_restart_on_sqlite_and_go_with_the_position(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    now = exchange.now = T0 + TICK
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        first = await reduce_by_hand(exchange, "web_part", Decimal("0.6"))
        now = exchange.now = now + TICK
        await keeper.tick(now)
        saved = await repository.load_state(EXTERNAL_BOOKED)
        assert saved == {BTC: {"trade_ids": [first]}}
    finally:
        await repository.close()

    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, now)
        assert keeper.positions[BTC].quantity > 0
        rest = keeper.positions[BTC].quantity
        second = await reduce_by_hand(exchange, "web_rest", rest)
        now = exchange.now = now + TICK
        await keeper.tick(now)
        assert BTC not in keeper.positions
        closed = {"trade_ids": [], "closed_ids": sorted([first, second])}
        assert await repository.load_state(EXTERNAL_BOOKED) == {BTC: closed}
    finally:
        await repository.close()

    repository = await SqliteRepository.open(path)  # the position gone: its trades kept
    try:
        restored = await ExternalBooked.restored(repository, set())
        assert restored.left_out() == {BTC: frozenset({first, second})}
        assert await repository.load_state(EXTERNAL_BOOKED) == {BTC: closed}
    finally:
        await repository.close()


@pytest.mark.parametrize(
    "saved",
    [
        {"trade_ids": "t-1"},
        {"trade_ids": [1, 2]},
        {"ids": ["t-1"]},
        {"trade_ids": ["t-1"], "last_exit": "qt-x-BTC-a-1"},
        {"trade_ids": ["t-1"], "last_exit": {**LAST_EXIT, "reason": "BECAUSE"}},
        {"trade_ids": ["t-1"], "last_exit": {**LAST_EXIT, "price": "NaN"}},
        {"trade_ids": ["t-1"], "last_exit": {**LAST_EXIT, "time": "2025-06-01T00:00:00"}},
        {"trade_ids": ["t-1"], "last_exit": {k: v for k, v in LAST_EXIT.items() if k != "price"}},
        {"trade_ids": ["t-1"], "closed_ids": "t-0"},
    ],
    ids=[
        "not a list",
        "not strings",
        "no trade ids",
        "last exit not a record",
        "last exit's reason unknown",
        "last exit's price NaN",
        "last exit's time naive",
        "last exit without a price",
        "closed ids not a list",
    ],
)
async def test_an_entry_that_cannot_be_read_back_is_said_once_and_dropped(
    tmp_path: Path, saved: dict[str, object]
) -> None:
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    now = exchange.now = T0 + TICK
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        await repository.save_state(EXTERNAL_BOOKED, BTC, saved)
        with capture_logs() as logs:
            keeper = await keeper_on(exchange, repository, now)
        [said] = [e for e in logs if e["event"] == "external_booked_unreadable"]
        assert (said["symbol"], said["saved"]) == (BTC, saved)
        assert BTC in keeper.positions
        assert await repository.load_state(EXTERNAL_BOOKED) == {}
        now = exchange.now = now + TICK
        await keeper.tick(now)  # and it ticks as before
        assert BTC in keeper.positions
    finally:
        await repository.close()


async def test_an_entry_of_a_position_gone_is_forgotten_at_start(tmp_path: Path) -> None:
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = await SqliteRepository.open(path)
    try:
        await repository.save_state(EXTERNAL_BOOKED, BTC, {"trade_ids": ["t-1"]})
        with capture_logs() as logs:
            await keeper_on(exchange, repository, T0)
        assert not [e for e in logs if e["event"] == "external_booked_unreadable"]
        assert await repository.load_state(EXTERNAL_BOOKED) == {}
    finally:
        await repository.close()


async def test_our_last_exit_that_left_some_is_saved_beside_the_trades_on_sqlite(
    tmp_path: Path,
) -> None:
    """Our partial take-profit leaves some of the long: its order, reason, price and trade
    are saved in the symbol's entry with its trade (`last_exit`), and read back after a
    restart; both go with the position."""
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    now = exchange.now = T0 + TICK
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        price = exchange.marks[BTC]
        while not [r for r in exchange.received if r.reduce_only and not r.kind.is_conditional]:
            price += Decimal("0.1")
            exchange.move(BTC, price)
            now = exchange.now = now + TICK
            await keeper.tick(now)
        [partial] = [r for r in exchange.received if r.reduce_only and not r.kind.is_conditional]
        [fill] = exchange.fills[partial.client_order_id]
        saved = (await repository.load_state(EXTERNAL_BOOKED))[BTC]
        assert saved == {
            "trade_ids": [fill.trade_id],
            "last_exit": {
                "order": partial.client_order_id,
                "reason": "PARTIAL_TP",
                "price": str(fill.price),
                "time": fill.time.isoformat(),
                "trade_id": fill.trade_id,
            },
        }
    finally:
        await repository.close()

    repository = await SqliteRepository.open(path)
    try:
        restored = await ExternalBooked.restored(repository, {BTC})
        [last] = restored.last_exits().values()
        assert (last.client_order_id, last.price) == (partial.client_order_id, fill.price)
        keeper = await keeper_on(exchange, repository, now)
        rest = await reduce_by_hand(exchange, "web_rest_2", keeper.positions[BTC].quantity)
        now = exchange.now = now + TICK
        await keeper.tick(now)
        assert BTC not in keeper.positions
        assert await repository.load_state(EXTERNAL_BOOKED) == {
            BTC: {"trade_ids": [], "closed_ids": sorted([fill.trade_id, rest])}
        }  # the last exit went with the position
    finally:
        await repository.close()


def test_the_trades_of_the_positions_gone_before_stay_left_out_the_newest_kept() -> None:
    """A position gone does not forget the one gone before it (the campaign with a restart,
    seed 40236: an adopted short's open and close by hand, then ours flipped by hand — the
    first short's trades taken again for the long the flip left); the newest 100 are kept
    (Binance's trade ids grow)."""
    external = ExternalBooked()
    first = external.changes({BTC: frozenset({"1", "2"})}, (), lambda s: True)
    external.keep(first)
    second = external.changes({BTC: frozenset({"5"})}, (), lambda s: True)
    external.keep(second)

    assert external.left_out() == {BTC: frozenset({"1", "2", "5"})}
    assert second.state == [
        (EXTERNAL_BOOKED, BTC, {"trade_ids": [], "closed_ids": ["1", "2", "5"]})
    ]
    many = external.changes({BTC: frozenset(str(i) for i in range(10, 110))}, (), lambda s: True)
    external.keep(many)
    assert external.left_out() == {BTC: frozenset(str(i) for i in range(10, 110))}
