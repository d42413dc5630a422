"""A year of paper trading: the account forgets what Binance USD-M no longer returns, at its
own clock, and nothing the keeper can still ask about (execution/paper_retention.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from paper_builders import BTC, ETH, T0, conditional, flat_rows, make_bars, make_exchange, market

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import Bars, OrderKind, OrderSide, OrderStatus
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_continuity import Books, continuity_problem
from quantum_trader.execution.paper_state import PaperState, load_state, save_state
from quantum_trader.market.replay import FundingSeries

BUY, SELL = OrderSide.BUY, OrderSide.SELL
STOP = OrderKind.STOP_MARKET
DAYS = 370
TRIPS_EVERY_DAYS = 2
TRIPS = 183  # one every other day for a year


def day(days: float) -> datetime:
    return T0 + timedelta(days=days)


def year_of_bars(symbol: str) -> Bars:
    return make_bars(symbol, flat_rows(20000.0, DAYS * 288))


def year_of_funding() -> FundingSeries:
    """A settlement every 8 hours at 0.01 %: a long of 0.01 at 20,000 pays 0.02 USDT each."""
    times = ms_from_utc(T0) + 8 * 3_600_000 * np.arange(DAYS * 3, dtype=np.int64)
    return FundingSeries.from_rates(times, np.full(times.shape, 0.0001))


def exchange_for_a_year(clock: ManualClock, state_path: Path | None) -> PaperExchange:
    bars = {BTC: year_of_bars(BTC), ETH: year_of_bars(ETH)}
    funding = {BTC: year_of_funding(), ETH: year_of_funding()}
    return make_exchange(clock, bars, funding=funding, state_path=state_path)


async def round_trip(exchange: PaperExchange, clock: ManualClock, start: datetime, n: int) -> None:
    """Open 0.01 at 01:00 with a stop, hold across the 08:00 settlement, cancel the stop and
    close at 09:00: three orders (the stop canceled with nothing filled), two fills, one
    funding payment."""
    clock.set(start + timedelta(hours=1))
    await exchange.place_order(market(f"e{n}", BUY, "0.01", symbol=ETH))
    await exchange.place_order(conditional(f"s{n}", STOP, SELL, "0.01", "19000", symbol=ETH))
    clock.set(start + timedelta(hours=9))
    await exchange.cancel_conditional_order(ETH, f"s{n}")
    await exchange.place_order(market(f"x{n}", SELL, "0.01", symbol=ETH, reduce_only=True))


async def a_year_of_round_trips(exchange: PaperExchange, clock: ManualClock) -> None:
    for n in range(TRIPS):
        await round_trip(exchange, clock, day(n * TRIPS_EVERY_DAYS), n)
    clock.set(day(366))
    await exchange.fetch_balance()


def counts(path: Path) -> tuple[int, int, int]:
    raw = json.loads(path.read_text())
    return len(raw["orders"]), len(raw["fills"]), sum(len(f) for f in raw["funding"].values())


async def test_a_year_old_account_keeps_what_binance_returns_and_counts_every_fill(
    tmp_path: Path,
) -> None:
    """Was: 549 orders, 366 fills, 183 settlements, all kept. Binance returns the filled
    orders of 90 days (45 trips: 90), the unfilled canceled of 3 (none: the last was a week
    before), the trades of 184 days (92 trips: 184) and the income of 92 days (46)."""
    path = tmp_path / "paper.json"
    clock = ManualClock(T0)
    exchange = exchange_for_a_year(clock, path)
    await a_year_of_round_trips(exchange, clock)

    orders, fills, funding = counts(path)
    assert orders <= 2 * 46
    assert fills <= 2 * 93
    assert funding <= 47
    state = load_state(path)
    assert state is not None
    assert state.fill_count() == 2 * TRIPS  # the true total: kept and pruned
    assert state.pruned_fills == 2 * TRIPS - fills
    assert list(state.held) == [ETH]  # the positions closed within the week, kept whole
    assert len(state.held[ETH]) <= 4


async def test_a_held_positions_answers_are_unchanged_across_the_retention_boundary(
    tmp_path: Path,
) -> None:
    """A long on BTC held for 300 days while ETH trades: its funding since its opening, its
    fills, its orders and the account's trades around it answer as in an account that prunes
    nothing (a backtest's), after the other symbol's old history is gone; once closed they
    still do for a week (the keeper books the close), then its old funding goes as on
    Binance. Its stop, canceled at the close with nothing filled, goes 3 days after."""
    pruned = await held_for_300_days(tmp_path / "paper.json")
    whole = await held_for_300_days(None)
    assert pruned.answers == whole.answers
    assert pruned.gone == [True, True, True, True]
    assert whole.gone == [False, False, False, False]
    assert pruned.stop == [True, True, False]  # canceled, nothing filled: 3 days from its end
    assert whole.stop == [True, True, True]
    assert pruned.answers[0][0] == Decimal("0.02") * (300 * 3)  # funding since its opening
    held_in_the_last_92_days = 3 * (300 - (308 - 92)) + 1  # day 216 00:00 to day 300 00:00
    assert pruned.after_a_week == (Decimal("0.02") * held_in_the_last_92_days, None, [])
    assert whole.after_a_week[0] == Decimal("0.02") * (300 * 3)


OPENED = day(0) + timedelta(minutes=30)


@dataclass
class HeldStory:
    answers: list[tuple[object, ...]]  # held at day 300; closed 2 h, 2 and 6 days after
    gone: list[bool]  # ETH's first entry, stop, exit, fills: not found at day 300
    stop: list[bool]  # BTC's stop, canceled at the close: found 2 h, 2 and 6 days after
    after_a_week: tuple[object, ...]  # BTC's funding since its opening, its entry, its fills


async def held_for_300_days(state_path: Path | None) -> HeldStory:
    clock = ManualClock(OPENED)
    exchange = exchange_for_a_year(clock, state_path)
    await exchange.place_order(market("long", BUY, "0.01"))
    await exchange.place_order(conditional("long-stop", STOP, SELL, "0.01", "15000"))
    for n in range(150):
        await round_trip(exchange, clock, day(n * TRIPS_EVERY_DAYS), n)
    clock.set(day(300))
    answers = [await held_answers(exchange, OPENED)]
    gone = [
        await exchange.fetch_order(ETH, "e0") is None,
        await exchange.fetch_order(ETH, "s0") is None,
        await exchange.fetch_order(ETH, "x0") is None,
        await exchange.fetch_fills(ETH, "e0") == [],
    ]
    await exchange.cancel_conditional_order(BTC, "long-stop")  # closed: the keeper books it
    await exchange.place_order(market("long-exit", SELL, "0.01", reduce_only=True))
    stop = []
    for later in (day(300) + timedelta(hours=2), day(302), day(306)):
        clock.set(later)
        answers.append(await held_answers(exchange, OPENED))
        stop.append(await exchange.fetch_order(BTC, "long-stop") is not None)
    clock.set(day(308))  # a week after the close: what Binance keeps, no more
    after = (
        await exchange.fetch_funding_paid(BTC, OPENED),
        await exchange.fetch_order(BTC, "long"),
        await exchange.fetch_fills(BTC, "long"),
    )
    return HeldStory(answers, gone, stop, after)


async def held_answers(exchange: PaperExchange, opened: datetime) -> tuple[object, ...]:
    return (
        await exchange.fetch_funding_paid(BTC, opened),
        await exchange.fetch_fills(BTC, "long"),
        await exchange.fetch_fills(BTC, "long-exit"),
        await exchange.fetch_order(BTC, "long"),
        await exchange.fetch_order(BTC, "long-exit"),
        await exchange.fetch_account_fills(BTC, opened, opened + timedelta(days=7)),
        await exchange.fetch_positions(),
        exchange.totals,
    )


async def test_an_unfilled_canceled_order_is_found_for_three_days_as_on_binance(
    tmp_path: Path,
) -> None:
    """Binance's Query Order: CANCELED or EXPIRED, no filled trade, created more than 3 days
    ago: not found (counted here from its end, 09:00). Its position's filled entry, as old,
    is still found (90 days)."""
    clock = ManualClock(T0)
    exchange = exchange_for_a_year(clock, tmp_path / "paper.json")
    await round_trip(exchange, clock, day(0), 0)  # stop s0 created at 01:00 and canceled

    clock.set(day(3) + timedelta(hours=8, minutes=59))  # canceled 2 days 23 h 59 min ago
    await exchange.place_order(market("late", BUY, "0.01", symbol=ETH))
    canceled = await exchange.fetch_order(ETH, "s0")
    assert canceled is not None
    assert canceled.status is OrderStatus.CANCELED

    clock.set(day(3) + timedelta(hours=10))  # more than 3 days
    assert await exchange.fetch_order(ETH, "s0") is None
    entry = await exchange.fetch_order(ETH, "e0")
    assert entry is not None
    assert entry.status is OrderStatus.FILLED
    await exchange.close()
    reloaded = exchange_for_a_year(clock, tmp_path / "paper.json")
    assert await reloaded.fetch_order(ETH, "s0") is None


async def test_a_pruned_account_is_accepted_beside_its_database_and_refused_beside_none(
    tmp_path: Path,
) -> None:
    """Every fill of a year-old account pruned but its count: the database's fills beside it
    are its own (was: "the paper account is new (it has no fills)", refused); an emptied
    database beside it is still refused, naming the true total."""
    path = tmp_path / "paper.json"
    clock = ManualClock(T0)
    exchange = exchange_for_a_year(clock, path)
    await round_trip(exchange, clock, day(0), 0)
    clock.set(day(200))
    await exchange.fetch_balance()
    state = load_state(path)
    assert state is not None
    assert state.fills == {}
    database = tmp_path / "quantum_trader.db"

    assert continuity_problem(state, Books(fills=2, open_positions=0), path, database) is None
    refused = continuity_problem(state, Books(fills=0, open_positions=0), path, database)
    assert refused is not None
    assert refused.startswith(f"the paper account {path} has 2 fills and 0 open positions")
    fresh = PaperState(wallet_usdt=Decimal(10000), last_ms=0)
    lost = continuity_problem(fresh, Books(fills=2, open_positions=0), path, database)
    assert lost is not None
    assert "is new (it has no fills)" in lost


async def test_a_version_1_file_loads_and_is_pruned_as_binance_would(tmp_path: Path) -> None:
    """A file written before pruning (version 1: no `held`, no `pruned_fills`) loads with
    nothing pruned and every symbol it names kept whole a week (but the orders canceled with
    nothing filled, which no read of the keeper's needs after 3 days); then pruned."""
    path = tmp_path / "paper.json"
    clock = ManualClock(T0)
    whole = exchange_for_a_year(clock, None)
    for n in range(60):
        await round_trip(whole, clock, day(n * TRIPS_EVERY_DAYS), n)
    await whole.place_order(market("held", BUY, "0.01"))
    write_version_1(path, whole)

    state = load_state(path)
    assert state is not None
    assert (state.pruned_fills, state.fill_count()) == (0, 2 * 60 + 1)
    assert sorted(state.held) == [BTC, ETH]
    loaded = exchange_for_a_year(clock, path)
    assert await loaded.fetch_order(ETH, "e0") is not None  # 118 days old: kept a week
    assert await loaded.fetch_order(ETH, "s0") is None
    clock.set(day(128))
    assert await loaded.fetch_fills(ETH, "e0") != []  # 128 days: within six months
    assert await loaded.fetch_order(ETH, "e0") is None  # past 90 days
    assert await loaded.fetch_fills(BTC, "held") != []
    assert load_state(path) is not None
    assert json.loads(path.read_text())["version"] == 2


def write_version_1(path: Path, exchange: PaperExchange) -> None:
    """The account as the version before pruning wrote it (of an exchange that prunes
    nothing: a backtest's)."""
    save_state(path, exchange._ledger.state)
    raw = json.loads(path.read_text())
    raw["version"] = 1
    del raw["held"], raw["pruned_fills"]
    path.write_text(json.dumps(raw))


async def test_a_pruned_account_saved_and_loaded_answers_the_same(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    clock = ManualClock(T0)
    exchange = exchange_for_a_year(clock, path)
    await a_year_of_round_trips(exchange, clock)
    await exchange.place_order(market("held", BUY, "0.01"))
    before = await every_answer(exchange)
    assert await exchange.fetch_order(ETH, "e0") is None  # pruned
    assert await exchange.fetch_order(ETH, f"e{TRIPS - 1}") is not None

    reloaded = exchange_for_a_year(clock, path)
    assert await every_answer(reloaded) == before


async def every_answer(exchange: PaperExchange) -> tuple[object, ...]:
    ids = [f"{kind}{n}" for n in range(TRIPS) for kind in "esx"]
    year = [day(d) for d in range(0, 366, 7)]
    return (
        [await exchange.fetch_order(ETH, cid) for cid in ids],
        [await exchange.fetch_fills(ETH, cid) for cid in ids],
        [await exchange.fetch_account_fills(ETH, d, d + timedelta(days=7)) for d in year],
        [await exchange.fetch_funding_paid(ETH, d) for d in year],
        await exchange.fetch_positions(),
        await exchange.fetch_balance(),
        exchange.totals,
    )
