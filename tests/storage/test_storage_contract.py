"""The Repository contract, run against both implementations (SQLite on a temp file, memory)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import storage_samples as s
from state_refusals import refuse_state_writes

from quantum_trader.domain import ExitReason, GateName, OrderStatus, ReasonCode, Side
from quantum_trader.ports import Repository, StateWrite, Writes
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.split import SplitRepository
from quantum_trader.storage.sqlite import SqliteRepository

Repo = SqliteRepository | InMemoryRepository | SplitRepository


def as_port(repo: Repo) -> Repository:
    """mypy checks here that every implementation satisfies the port exactly."""
    return repo


@pytest.fixture(params=["sqlite", "memory", "split"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repo]:
    store: Repo
    if request.param == "sqlite":
        store = await SqliteRepository.open(tmp_path / "ledger.db")
    elif request.param == "split":  # the backtest's: ledger in memory, audit rows in SQLite
        store = SplitRepository(
            InMemoryRepository(), await SqliteRepository.open(tmp_path / "a.db")
        )
    else:
        store = InMemoryRepository()
    yield store
    await store.close()


async def test_orders_round_trip_every_field(repo: Repo) -> None:
    minimal, full = s.order(), s.full_order()
    await as_port(repo).save_order(minimal)
    await repo.save_order(full)

    assert await repo.get_order(minimal.client_order_id) == minimal
    assert await repo.get_order(full.client_order_id) == full
    assert await repo.get_order("never-sent") is None


async def test_decimal_text_is_kept_exactly(repo: Repo) -> None:
    quantity = Decimal("0.00012345")
    price = Decimal("123456789012345678901234567890.1234567890")
    await repo.save_order(replace(s.order(), quantity=quantity, average_price=price))

    stored = await repo.get_order("qt-1")

    assert stored is not None
    assert str(stored.quantity) == "0.00012345"
    assert str(stored.average_price) == str(price)


async def test_datetimes_come_back_tz_aware_utc(repo: Repo) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2025, 9, 1, 14, 0, 0, 1, tzinfo=plus_two)
    await repo.save_order(s.order(created_at=created))

    stored = await repo.get_order("qt-1")

    assert stored is not None
    assert stored.created_at == created
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at.hour == 12


async def test_naive_datetimes_are_refused(repo: Repo) -> None:
    with pytest.raises(ValueError, match="naive"):
        await repo.save_order(s.order(created_at=datetime(2025, 9, 1)))  # noqa: DTZ001
    assert await repo.orders() == []


async def test_order_upsert_moves_status_and_keeps_created_at(repo: Repo) -> None:
    pending = s.order()
    await repo.save_order(pending)
    filled = replace(
        pending,
        status=OrderStatus.FILLED,
        created_at=s.at(99),
        updated_at=s.at(2),
        exchange_order_id="42",
        filled_quantity=pending.quantity,
        average_price=Decimal("64000.1"),
    )
    await repo.save_order(filled)

    stored = await repo.get_order(pending.client_order_id)

    assert stored == replace(filled, created_at=pending.created_at)
    assert len(await repo.orders()) == 1


async def test_orders_sort_by_created_at_then_id_and_filter_by_symbol(repo: Repo) -> None:
    await repo.save_order(s.order("b", created_at=s.at(10)))
    await repo.save_order(s.order("c", symbol=s.ETH, created_at=s.at(0)))
    await repo.save_order(s.order("a", created_at=s.at(10)))

    assert [o.client_order_id for o in await repo.orders()] == ["c", "a", "b"]
    assert [o.client_order_id for o in await repo.orders(s.BTC)] == ["a", "b"]


async def test_open_orders_are_pending_open_or_unknown(repo: Repo) -> None:
    for i, status in enumerate(OrderStatus):
        await repo.save_order(s.order(f"o{i}", status=status, created_at=s.at(i)))

    statuses = [o.status for o in await repo.open_orders()]

    assert statuses == [OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.UNKNOWN]


async def test_fills_round_trip_and_the_same_fill_is_stored_once(repo: Repo) -> None:
    first = s.fill("t-1")
    await repo.record_fills([first, first])
    await repo.record_fills([first])

    assert await repo.fills() == [first]


async def test_fills_are_keyed_by_symbol_and_trade_id(repo: Repo) -> None:
    btc, eth = s.fill("77", symbol=s.BTC), s.fill("77", symbol=s.ETH)
    await repo.record_fills([btc, eth])

    assert await repo.fills() == [btc, eth]
    assert await repo.fills(s.ETH) == [eth]


async def test_fills_sort_by_time_then_trade_id(repo: Repo) -> None:
    late = s.fill("a", time=s.at(60))
    early_b = s.fill("b", time=s.at(0))
    early_a = s.fill("a0", time=s.at(0))
    await repo.record_fills([late, early_b, early_a])

    assert [f.trade_id for f in await repo.fills()] == ["a0", "b", "a"]


async def test_positions_round_trip_upsert_and_delete(repo: Repo) -> None:
    minimal, full = s.position(), s.full_position()
    await repo.save_position(full)
    await repo.save_position(minimal)
    assert await repo.open_positions() == [minimal, full]

    moved = replace(minimal, stop_price=Decimal("64000.5"), break_even_done=True)
    await repo.save_position(moved)
    assert await repo.open_positions() == [moved, full]

    await repo.delete_position(s.BTC)
    await repo.delete_position("NOT/HELD:USDT")
    assert await repo.open_positions() == [full]


async def test_closed_trades_round_trip_sorted_by_close_and_stored_once(repo: Repo) -> None:
    late = s.closed_trade(closed_at=s.at(500), entry_order_id="qt-2")
    early = s.closed_trade(s.ETH, closed_at=s.at(100))
    await repo.record_closed_trade(late)
    await repo.record_closed_trade(early)
    await repo.record_closed_trade(late)

    assert await repo.closed_trades() == [early, late]


async def test_every_exit_reason_round_trips_the_exchanges_own_closes_too(repo: Repo) -> None:
    """LIQUIDATION and ADL (keeper/forced.py) beside the reasons stored before them, whose
    stored text is unchanged: a database written before reads the same."""
    reasons = list(ExitReason)
    assert {ExitReason.LIQUIDATION, ExitReason.ADL} <= set(reasons)
    trades = [
        replace(s.closed_trade(closed_at=s.at(i), entry_order_id=f"qt-{i}"), exit_reason=reason)
        for i, reason in enumerate(reasons)
    ]
    events = [replace(s.position_event(time=s.at(i)), reason=r) for i, r in enumerate(reasons)]
    for trade in trades:
        await repo.record_closed_trade(trade)
    await repo.record_position_events(events)

    assert await repo.closed_trades() == trades
    assert [e.reason for e in await repo.position_events()] == reasons
    assert (ExitReason.MANUAL.value, ExitReason.SL_HIT.value) == ("MANUAL", "SL_HIT")


async def test_a_trade_that_closes_its_position_deletes_that_position_alone(repo: Repo) -> None:
    await repo.save_position(s.position())
    await repo.save_position(s.position(s.ETH))
    await repo.record_closed_trade(s.closed_trade(), closes_position=True)

    assert await repo.closed_trades() == [s.closed_trade()]
    assert await repo.open_positions() == [s.position(s.ETH)]


async def test_a_trade_and_its_positions_deletion_are_one_transaction(tmp_path: Path) -> None:
    """A deletion SQLite refuses (a trigger here) leaves the trade's row unwritten too: a
    crash between the two cannot leave a position gone without its trade."""
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.save_position(s.position())
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute(
                "CREATE TRIGGER refused BEFORE DELETE ON positions "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            other.commit()
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await repo.record_closed_trade(s.closed_trade(), closes_position=True)
        assert await repo.closed_trades() == []
        assert await repo.open_positions() == [s.position()]
    finally:
        await repo.close()


STATS = ("symbol_stats", s.BTC)


async def test_a_trade_and_the_state_it_changes_land_together(repo: Repo) -> None:
    await repo.save_position(s.position())
    stored = await as_port(repo).record_closed_trade(
        s.closed_trade(),
        closes_position=True,
        state=[("account", "tracker", {"losing_streak": 0}), (*STATS, {"trades": 1})],
    )

    assert stored is None
    assert await repo.closed_trades() == [s.closed_trade()]
    assert await repo.open_positions() == []
    assert await repo.load_state("account") == {"tracker": {"losing_streak": 0}}
    assert await repo.load_state("symbol_stats") == {s.BTC: {"trades": 1}}


async def test_a_trade_whose_state_cannot_be_written_is_not_stored(repo: Repo) -> None:
    """A payload JSON cannot hold fails the whole write, in memory as in SQLite."""
    await repo.save_position(s.position())
    await repo.save_state(*STATS, {"trades": 0})
    state: list[StateWrite] = [("account", "tracker", {"n": 1}), (*STATS, {"trades": object()})]

    with pytest.raises(TypeError):
        await repo.record_closed_trade(s.closed_trade(), closes_position=True, state=state)
    with pytest.raises(TypeError):
        await repo.amend_closed_trade(s.closed_trade(), state=state)

    assert await repo.closed_trades() == []
    assert await repo.open_positions() == [s.position()]
    assert await repo.load_state("account") == {}
    assert await repo.load_state("symbol_stats") == {s.BTC: {"trades": 0}}


async def test_a_trade_stored_already_is_returned_and_nothing_else_is_written(
    repo: Repo,
) -> None:
    """The same trade again (a booking replayed) and another under its key (only an adopted
    position's entry id could repeat) store neither the trade nor its state; the position
    is deleted all the same."""
    first = s.closed_trade(entry_order_id="adopted-BTC-1")
    other = replace(first, pnl_usdt=Decimal("-3"), r_multiple=-0.5)
    await repo.record_closed_trade(first, state=[(*STATS, {"trades": 1})])
    await repo.save_position(s.position())

    assert await repo.record_closed_trade(first, state=[(*STATS, {"trades": 2})]) == first
    assert (
        await repo.record_closed_trade(other, closes_position=True, state=[(*STATS, {"trades": 3})])
        == first
    )

    assert await repo.closed_trades() == [first]
    assert await repo.load_state("symbol_stats") == {s.BTC: {"trades": 1}}
    assert await repo.open_positions() == []


async def test_an_amendment_and_its_state_land_together_and_only_with_a_change(
    repo: Repo,
) -> None:
    trade = s.closed_trade()
    amended = replace(trade, fees_usdt=Decimal("1"), pnl_usdt=Decimal("8.93654321"))
    await repo.record_closed_trade(trade, state=[(*STATS, {"trades": 1})])
    missing = s.closed_trade(entry_order_id="qt-9")

    assert await repo.amend_closed_trade(missing, state=[(*STATS, {"v": "missing"})]) is None
    assert await repo.amend_closed_trade(trade, state=[(*STATS, {"v": "same"})]) == trade
    assert await repo.load_state("symbol_stats") == {s.BTC: {"trades": 1}}
    assert await as_port(repo).amend_closed_trade(amended, state=[(*STATS, {"v": 1})]) == trade
    assert await repo.closed_trades() == [amended]
    assert await repo.load_state("symbol_stats") == {s.BTC: {"v": 1}}


async def test_a_trade_and_its_state_are_one_transaction(tmp_path: Path) -> None:
    """A state row SQLite refuses (a trigger here) leaves the trade's row, and the position's
    deletion, unwritten: a stop between them cannot leave a trade without its statistics."""
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.save_position(s.position())
        refuse_state_writes(path, "symbol_stats")
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await repo.record_closed_trade(
                s.closed_trade(), closes_position=True, state=[(*STATS, {"trades": 1})]
            )
        assert await repo.closed_trades() == []
        assert await repo.open_positions() == [s.position()]
        assert await repo.load_state("symbol_stats") == {}
    finally:
        await repo.close()


async def test_an_amendment_and_its_state_are_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    trade = s.closed_trade()
    repo = await SqliteRepository.open(path)
    try:
        await repo.record_closed_trade(trade)
        refuse_state_writes(path, "symbol_stats")
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await repo.amend_closed_trade(
                replace(trade, fees_usdt=Decimal(1)), state=[(*STATS, {"trades": 1})]
            )
        assert await repo.closed_trades() == [trade]
        assert await repo.load_state("symbol_stats") == {}
    finally:
        await repo.close()


async def test_a_trade_of_unknown_r_comes_back_with_none_not_zero(repo: Repo) -> None:
    unknown = s.closed_trade(r_multiple=None)
    await repo.record_closed_trade(unknown)
    assert await repo.closed_trades() == [unknown]


async def test_an_amended_trade_replaces_the_stored_one_in_its_place(repo: Repo) -> None:
    early = s.closed_trade(closed_at=s.at(100), entry_order_id="qt-1")
    late = s.closed_trade(s.ETH, closed_at=s.at(500))
    await repo.record_closed_trade(early)
    await repo.record_closed_trade(late)
    amended = replace(
        early, fees_usdt=Decimal("0.0712"), pnl_usdt=Decimal("9.85654321"), r_multiple=1.7
    )

    assert await as_port(repo).amend_closed_trade(amended) == early
    assert await repo.amend_closed_trade(amended) == amended  # the same again: no change
    assert await repo.closed_trades() == [amended, late]
    assert await repo.amend_closed_trade(replace(amended, r_multiple=None)) == amended
    assert (await repo.closed_trades())[0].r_multiple is None


async def test_amending_a_trade_never_stored_stores_nothing(repo: Repo) -> None:
    await repo.record_closed_trade(s.closed_trade())
    other = s.closed_trade(entry_order_id="qt-9")  # same symbol and close, another entry

    assert await repo.amend_closed_trade(other) is None
    assert await repo.amend_closed_trade(s.closed_trade(closed_at=s.at(1))) is None
    assert await repo.closed_trades() == [s.closed_trade()]


async def test_an_amended_trade_is_in_the_file_when_it_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    trade = s.closed_trade()
    amended = replace(trade, fees_usdt=Decimal("1"), pnl_usdt=Decimal("8.93654321"))
    first = await SqliteRepository.open(path)
    await first.record_closed_trade(trade)
    assert await first.amend_closed_trade(amended) == trade
    await first.close()

    again = await SqliteRepository.open(path)
    try:
        assert await again.closed_trades() == [amended]
    finally:
        await again.close()


async def test_decisions_round_trip_every_field(repo: Repo) -> None:
    full, minimal = s.full_decision(), s.decision()
    await repo.record_decisions([full, minimal])
    await repo.flush()

    assert await repo.recent_decisions(10) == [full, minimal]


async def test_decision_extras_are_json(repo: Repo) -> None:
    extra: dict[str, object] = {"price": Decimal("1.50"), "at": s.T0, "pair": (1, 2)}
    await repo.record_decisions([replace(s.decision(), extra=extra)])

    (stored,) = await repo.recent_decisions(1)

    assert stored.extra == {
        "price": "1.50",
        "at": "2025-09-01T12:00:00.123456+00:00",
        "pair": [1, 2],
    }


async def test_recent_decisions_are_newest_first_and_limited(repo: Repo) -> None:
    await repo.record_decisions(
        [s.decision("old", time=s.at(0)), s.decision("tie-1", time=s.at(30))]
    )
    await repo.record_decisions(
        [s.decision("tie-2", time=s.at(30)), s.decision("older", time=s.at(-30))]
    )

    assert [d.cycle_id for d in await repo.recent_decisions(3)] == ["tie-2", "tie-1", "old"]
    assert await repo.recent_decisions(0) == []


async def test_buffered_decisions_are_counted_after_flush(repo: Repo) -> None:
    paused = [s.decision(f"c{i}") for i in range(3)]
    low_win = s.decision(gate=GateName.ORCHESTRATOR, reason=ReasonCode.SYMBOL_LOW_WIN_RATE)
    await repo.record_decisions([*paused, low_win])
    await repo.record_decisions([s.full_decision()])
    await repo.flush()

    assert await repo.decision_counts() == {
        ("governor", "PAUSED"): 3,
        ("orchestrator", "SYMBOL_LOW_WIN_RATE"): 1,
        ("balancer", "APPROVED"): 1,
    }


async def test_decision_counts_include_unflushed_rows(repo: Repo) -> None:
    await repo.record_decisions([s.decision()])

    assert await repo.decision_counts() == {("governor", "PAUSED"): 1}


async def test_position_events_round_trip_sorted_by_time(repo: Repo) -> None:
    full = s.full_position_event()
    first, tie = s.position_event(time=s.at(30)), s.position_event(s.ETH, time=s.at(30))
    await repo.record_position_events([full, first])
    await repo.record_position_events([tie, s.position_event(time=s.at(0))])
    await repo.flush()

    assert await repo.position_events() == [s.position_event(time=s.at(0)), full, first, tie]


async def test_equity_history_round_trips_sorted_by_time(repo: Repo) -> None:
    later, earlier = s.equity(s.at(60), "10100.5"), s.equity(s.at(0))
    await repo.record_equity(later)
    await repo.record_equity(earlier)

    assert await repo.equity_history() == [earlier, later]


async def test_latest_equity_is_the_end_of_the_history_in_its_order(repo: Repo) -> None:
    tie_first, tie_second = s.equity(s.at(60), "10100.5"), s.equity(s.at(60), "10100.25")
    for snapshot in (s.equity(s.at(120), "10200"), tie_first, s.equity(s.at(0)), tie_second):
        await repo.record_equity(snapshot)  # unflushed: read all the same

    history = await repo.equity_history()
    assert [await repo.latest_equity(n) for n in (0, 1, 3, 9)] == [
        [], history[-1:], history[-3:], history,
    ]  # fmt: skip
    assert history[1:3] == [tie_first, tie_second]


async def test_fills_and_closed_trades_are_counted_as_read(repo: Repo) -> None:
    assert (await repo.fill_count(), await repo.closed_trade_count()) == (0, 0)
    await repo.record_fills([s.fill("t-1"), s.fill("t-2"), s.fill("t-1")])  # t-1 once
    await repo.record_fills([s.fill("t-1", symbol=s.ETH)])
    for minute in (0, 5, 5):  # the same close twice: stored once
        await repo.record_closed_trade(s.closed_trade(closed_at=s.at(60 * minute)))

    assert await repo.fill_count() == len(await repo.fills()) == 3
    assert await repo.closed_trade_count() == len(await repo.closed_trades()) == 2


async def test_state_save_load_and_overwrite_per_namespace(repo: Repo) -> None:
    await repo.save_state("governor", "halt", {"halted": True, "until": None})
    await repo.save_state("governor", "daily", {"loss_usdt": Decimal("12.50"), "n": 3})
    await repo.save_state("stats", "BTC", {"wins": 1})
    await repo.save_state("governor", "halt", {"halted": False})

    assert await repo.load_state("governor") == {
        "daily": {"loss_usdt": "12.50", "n": 3},
        "halt": {"halted": False},
    }
    assert await repo.load_state("stats") == {"BTC": {"wins": 1}}
    assert await repo.load_state("nothing-here") == {}


async def test_close_twice_is_harmless(repo: Repo) -> None:
    await repo.record_decisions([s.decision()])
    await repo.close()
    await repo.close()


async def test_writes_racing_a_flush_are_all_kept(repo: Repo) -> None:
    await repo.record_decisions([s.decision(f"c{i}") for i in range(500)])

    await asyncio.gather(
        repo.flush(),
        repo.save_order(s.order()),
        repo.record_decisions([s.decision("late")]),
        repo.save_state("ns", "k", {"v": 1}),
    )

    assert await repo.decision_counts() == {("governor", "PAUSED"): 501}
    assert await repo.orders() == [s.order()]
    assert await repo.load_state("ns") == {"k": {"v": 1}}


async def test_writes_go_together_in_their_order(repo: Repo) -> None:
    """`write`: orders saved (the first `created_at` kept), fills, a position deleted and
    another saved, a state entry deleted and another saved."""
    await repo.save_order(s.order())
    await repo.save_position(s.position())
    await repo.save_state("intents", "qt-1", {"reason": "TP"})
    filled = replace(s.order(status=OrderStatus.FILLED), created_at=s.at(5), updated_at=s.at(5))
    smaller = replace(s.position(s.ETH), quantity=Decimal("0.005"))
    await as_port(repo).write(
        Writes(
            orders=[filled],
            fills=[s.fill()],
            positions_deleted=[s.BTC],
            positions=[smaller],
            state_deleted=[("intents", "qt-1")],
            state=[("external_booked", s.ETH, {"trade_ids": ["1"]})],
        )
    )

    assert await repo.orders() == [replace(filled, created_at=s.T0)]
    assert await repo.fills() == [s.fill()]
    assert await repo.open_positions() == [smaller]
    assert await repo.load_state("intents") == {}
    assert await repo.load_state("external_booked") == {s.ETH: {"trade_ids": ["1"]}}
    assert not Writes()


async def test_writes_that_cannot_all_be_written_write_none(repo: Repo) -> None:
    """A payload JSON cannot hold fails the whole write, in memory as in SQLite."""
    await repo.save_position(s.position())
    smaller = replace(s.position(), quantity=Decimal("0.005"))
    writes = Writes(
        orders=[s.order(status=OrderStatus.FILLED)],
        positions=[smaller],
        state=[("external_booked", s.BTC, {"trade_ids": object()})],
    )

    with pytest.raises(TypeError):
        await repo.write(writes)

    assert await repo.orders() == []
    assert await repo.open_positions() == [s.position()]
    assert await repo.load_state("external_booked") == {}


async def test_writes_refused_by_sqlite_midway_leave_none(tmp_path: Path) -> None:
    """A position's write SQLite refuses (a trigger, as a stop there would) leaves the order
    written before it in the same call unwritten too: one transaction."""
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.save_position(s.position())
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute(
                "CREATE TRIGGER refused BEFORE INSERT ON positions "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            other.commit()
        smaller = replace(s.position(), quantity=Decimal("0.005"))
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await repo.write(
                Writes(orders=[s.order(status=OrderStatus.FILLED)], positions=[smaller])
            )
        assert await repo.orders() == []
        assert await repo.open_positions() == [s.position()]
    finally:
        await repo.close()


async def test_a_trade_writes_what_goes_with_it_after_its_positions_deletion(repo: Repo) -> None:
    """A flip: the closed long's trade deletes its row, then the short the same symbol now
    holds is saved, with the order that closed it; all again, the trade once, when the trade
    is stored already (a booking replayed)."""
    await repo.save_position(s.position())
    await repo.save_order(s.order("qt-s-1"))
    short = replace(s.position(), side=Side.SHORT, quantity=Decimal("0.004"))
    filled = replace(s.order("qt-s-1", status=OrderStatus.FILLED), updated_at=s.at(3))
    writes = Writes(orders=[filled], positions=[short])
    for _ in range(2):
        await as_port(repo).record_closed_trade(
            s.closed_trade(), closes_position=True, writes=writes
        )

        assert await repo.closed_trades() == [s.closed_trade()]
        assert await repo.open_positions() == [short]
        assert await repo.orders() == [filled]
