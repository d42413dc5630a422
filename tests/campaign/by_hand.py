"""The fault campaign with a person trading by hand on the same account.

`run_by_hand(seed, ...)` is `campaign.run_campaign` (the daemon in testnet mode, in-process on
a simulated clock, against the stand-in with faults drawn from `seed`) with a person beside it
who now and then (`SECONDS_BETWEEN`, `TICKS_BETWEEN`) trades by hand on a symbol the account holds:
through the stand-in's HTTP API as a second client of the same account (Binance's web site:
the header `SECOND_CLIENT`, so the API's faults never touch the person's requests and the
daemon's fault draws stay its own), with client order ids that are not ours (`web_…`). What
the person does is drawn from the seed: a partial reduction, a full close, a flip (LONG 3 →
SHORT 3 in one market order), or cancelling our protective stop. The person acts only while
the faults are armed; the daemon then settles without faults or person, as in the fault
campaign.

Watched, on top of the fault campaign's checks (campaign.py; positions and every order of
ours, database against the stand-in, at the end):

- no position the stand-in holds (ours, one a flip opened, one whose stop the person
  cancelled) goes without a reduce-only stop of ours for more than `STOP_WITHIN_TICKS` of the
  keeper's ticks that could send — or, where a user-data event about it never reached the
  daemon, than the REST check that reveals it allows (`allowed_ticks`);
- every close by hand (a person's trade that takes a position to zero or across it) is booked
  as a closed trade with reason MANUAL at the price of the account's trades — that trade's, or
  the average of it and the person's reductions just before it that a tick booked together
  (`CloseByHand.exit_prices`) — or at the mark when the daemon could not read the account's
  trades for `keeper.external_close_mark_after_s` after it saw the close (`at_the_mark`, the
  keeper's design); and no closed trade is booked MANUAL without one;
- no fee is counted twice: on each symbol the fees the database booked (closed trades, and the
  positions still open) do not exceed the commissions the stand-in charged.

A wider campaign from the command line (one process per seed, five at a time; each seed's log
kept in LOGS/SEED.log, the problems printed):

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/by_hand.py \\
        campaign FIRST COUNT [--at-once 5] [--minutes 4] [--logs LOGS]

and one seed, its daemon's log on stdout, then what the person did (BY HAND), the stand-in's
trades (TRADE) and conditional orders (ALGO), the spans without a stop of more than a tick
(BARE) and the problems (PROBLEM):

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/by_hand.py run SEED

A seed fixes what is drawn — the signals, the faults, the person's actions and their timing
— not how they interleave with the daemon's loops on the machine of the day (the person
acts on whatever is held when its turn comes), so a rerun does not always repeat a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import IO, Any

import aiohttp
import uvloop
from campaign import (
    MARKET_IDS,
    MONITOR_S,
    Outcome,
    TickCounter,
    campaign_problems,
    run_campaign,
    unprotected,
)
from loopback.server import SECOND_CLIENT, LoopbackBinance
from loopback.state import LoopbackState

from quantum_trader.app import Runtime
from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import ClosedTrade, ExitReason
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.storage.sqlite import SqliteRepository

# The bound on a position without a covering stop of ours, in the keeper's ticks that could
# send: the fault campaign's (campaign.STOP_WITHIN_TICKS), the design's promise for what the
# keeper can know. What a user-data event the stand-in never delivered (dropped, silenced, no
# stream connected: `StreamHub.hidden`) kept from it is seen only by its REST checks
# (KEEPER.md, "Streams first, REST to check"): a position changed (a flip: ACCOUNT_UPDATE
# hidden) by the check of positions every `keeper.rest_position_check_s`, our stop cancelled
# by hand (its ALGO_UPDATE hidden) by the full check every `keeper.rest_check_interval_s`. A
# span on a symbol with such an event hidden since the last full check before it is held to
# that check's ticks, plus STOP_WITHIN_TICKS (the tick that reads it may find it just after;
# ticks the person's trades wake count too: a span of 3 can last 2 s).
STOP_WITHIN_TICKS = 2
PERSON_PREFIX = "web_"
# What the person does, with its weight in the draw.
KINDS = ("reduce", "close", "flip", "cancel_stop")
WEIGHTS = (30, 25, 25, 20)
# The person acts every 5–30 simulated seconds, and never before the keeper completed two
# ticks since the last action: on a busy machine simulated time runs ahead of the ticks, and
# the person would trade again and again before the keeper looked once.
# Two ticks are the design's bound only while the user-data events reach the daemon: one
# lost, a position changed by hand is seen by the check of positions (4 ticks at 20 s). The
# person no longer waits for the keeper to catch up (it did, up to 6 ticks, until 2026-12-03:
# seeds 30102 and 30108, a flip whose events were lost, unseen for 2 ticks, then a reduction,
# or a flip back, by hand — the close booked at the mark, or the round trip not at all): the
# keeper now replays the account's trades from the position as booked, and sees a round trip
# by its entry price (keeper/round_trip.py).
SECONDS_BETWEEN = (5.0, 30.0)
TICKS_BETWEEN = 2
FEE_SLACK_USDT = Decimal("0.000001")  # rounding of a fee shared between two positions
TRADES_ROUTE = "/fapi/v1/userTrades"
PRICE_DIGITS = Decimal("1e-12")
TICK_MS = round(MONITOR_S * 1000)
BOOKING_TICK_TICKS = 3  # how long a tick that books may last, in the stand-in's ticks
# The longest a tick's start may precede one of its reads: a lost answer waits out the
# client's 2 s timeout, 60 s of the stand-in's 30× clock (seen: 61–63 s, seed 30123).
LONGEST_TICK_MS = 70_000


@dataclass(frozen=True, slots=True)
class HandAction:
    """What the person did: `kind` on `market_id` at the stand-in's `time_ms`, `quantity`
    the order's (0 for a cancel), `answer` the stand-in's order status or error;
    `covered_ms`, for a cancel, when the person last saw the position covered by a stop of
    ours, just before cancelling it (None: it was not)."""

    time_ms: int
    market_id: str
    kind: str
    client_id: str
    quantity: Decimal
    answer: str
    covered_ms: int | None = None


class Person:
    """Trades by hand beside the daemon, everything drawn from `seed`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(f"by-hand-{seed}")
        self.actions: list[HandAction] = []
        self.server: LoopbackBinance | None = None  # the stand-in, once beside one
        self.keeper: KeeperSettings | None = None  # the daemon's, once beside one
        # each closed trade (`booking_key`) → the stand-in's ms when the database first held it
        self.booked_seen_ms: dict[tuple[str, str, int], int] = {}

    def beside(
        self, server: LoopbackBinance, runtime: Runtime
    ) -> Callable[[asyncio.Event], Awaitable[None]]:
        self.server, self.keeper = server, runtime.settings.keeper

        async def both(stopping: asyncio.Event) -> None:
            await asyncio.gather(
                self.trade(server, runtime, stopping), self.watch_bookings(runtime, stopping)
            )

        return both

    async def watch_bookings(self, runtime: Runtime, stopping: asyncio.Event) -> None:
        """When each closed trade first shows in the database, sampled every simulated second:
        the tick that booked it read the account's trades before it wrote it (`at_the_mark`)."""
        clock, state = runtime.clock, self.server.state if self.server else None
        assert state is not None
        while not stopping.is_set():
            for trade in await runtime.repository.closed_trades():
                self.booked_seen_ms.setdefault(booking_key(trade), state.now_ms)
            await clock.sleep_until(clock.now() + timedelta(seconds=1))

    async def trade(
        self, server: LoopbackBinance, runtime: Runtime, stopping: asyncio.Event
    ) -> None:
        """Act now and then (`SECONDS_BETWEEN`, `TICKS_BETWEEN`) until `stopping` is set."""
        ticks, clock = TickCounter(runtime), runtime.clock
        headers = {SECOND_CLIENT: "person"}
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            while not stopping.is_set():
                start, wait_s = ticks.sample(), self._rng.uniform(*SECONDS_BETWEEN)
                until = clock.now() + timedelta(seconds=wait_s)
                while (
                    clock.now() < until or ticks.sample() - start < TICKS_BETWEEN
                ) and not stopping.is_set():
                    await clock.sleep_until(clock.now() + timedelta(seconds=1))
                # Drawn whatever is held, so the draws stay in step with the seed.
                kind = self._rng.choices(KINDS, WEIGHTS)[0]
                pick, share = self._rng.random(), self._rng.uniform(0.2, 0.8)
                if not stopping.is_set():
                    await self._act(session, server.state, kind, pick, share)

    async def _act(
        self,
        session: aiohttp.ClientSession,
        state: LoopbackState,
        kind: str,
        pick: float,
        share: float,
    ) -> None:
        async with session.get("/fapi/v3/positionRisk") as answer:
            rows = await answer.json()
        held = {r["symbol"]: Decimal(r["positionAmt"]) for r in rows if Decimal(r["positionAmt"])}
        if not held:
            return
        market_id = sorted(held)[int(pick * len(held))]
        client_id = f"{PERSON_PREFIX}{self.seed}_{len(self.actions)}"
        covered_ms = None
        if kind == "cancel_stop":
            answer_text, covered_ms = await self._cancel_stop(session, state, market_id)
            quantity = Decimal(0)
        else:
            quantity = _quantity(kind, held[market_id], share, state, market_id)
            side = "SELL" if held[market_id] > 0 else "BUY"
            params = {"symbol": market_id, "side": side, "type": "MARKET",
                      "quantity": str(quantity), "newClientOrderId": client_id}  # fmt: skip
            if kind != "flip":
                params["reduceOnly"] = "true"
            async with session.post("/fapi/v1/order", data=params) as answer:
                body = await answer.json()
            answer_text = body.get("status") or f"{body.get('code')} {body.get('msg')}"
        self.actions.append(
            HandAction(state.now_ms, market_id, kind, client_id, quantity, answer_text, covered_ms)
        )

    async def _cancel_stop(
        self, session: aiohttp.ClientSession, state: LoopbackState, market_id: str
    ) -> tuple[str, int | None]:
        async with session.get("/fapi/v1/openAlgoOrders", params={"symbol": market_id}) as got:
            stops = [
                o["clientAlgoId"]
                for o in await got.json()
                if is_ours(o["clientAlgoId"]) and o["orderType"] == "STOP_MARKET"
            ]
        if not stops:
            return "no stop of ours", None
        covered_ms = None if market_id in unprotected(state) else state.now_ms
        params = {"symbol": market_id, "clientAlgoId": stops[0]}
        async with session.delete("/fapi/v1/algoOrder", params=params) as answer:
            body: dict[str, Any] = await answer.json()
        text = f"canceled {stops[0]}" if answer.status == 200 else f"{body.get('msg')}"
        return text, covered_ms


def _quantity(
    kind: str, held: Decimal, share: float, state: LoopbackState, market_id: str
) -> Decimal:
    """The person's order: a share of the position (at least a step, less than all of it,
    when it has two steps or more), all of it, or twice it (a flip)."""
    size, step = abs(held), Decimal(state.markets[market_id].step_size)
    if kind == "flip":
        return 2 * size
    if kind == "close" or size < 2 * step:
        return size
    part = (size * Decimal(str(share)) / step).to_integral_value(ROUND_DOWN) * step
    return min(max(part, step), size - step)


def booking_key(trade: ClosedTrade) -> tuple[str, str, int]:
    """A closed trade's key in the database: its symbol, entry order and close time."""
    return trade.symbol, trade.entry_order_id, ms_from_utc(trade.closed_at)


@dataclass(frozen=True, slots=True)
class CloseByHand:
    """A person's trade that took a position to zero or across it, at `price`.

    `exit_prices` are the exit prices the books may show for it: the keeper books the
    person's reducing trades it has not booked yet in one reduction, at their average, so a
    close by hand is booked at the average of the last one, two, … of the person's reductions
    of that position ending with it (the share of a flip that closed it counted)."""

    market_id: str
    time_ms: int
    price: Decimal
    held_before: Decimal
    exit_prices: tuple[Decimal, ...]


def closes_by_hand(state: LoopbackState) -> list[CloseByHand]:
    """The stand-in's trades in order, the position on each symbol followed from flat."""
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    held: dict[str, Decimal] = defaultdict(Decimal)
    reductions: dict[str, list[tuple[Decimal, Decimal]]] = defaultdict(list)  # (qty, price)
    closes = []
    for trade in sorted(state.trades, key=lambda t: int(t["id"])):
        market_id, before = trade["symbol"], held[trade["symbol"]]
        price = Decimal(trade["price"])
        signed = Decimal(trade["qty"]) * (1 if trade["side"] == "BUY" else -1)
        held[market_id] = after = before + signed
        by_hand = client_of.get(trade["orderId"], "").startswith(PERSON_PREFIX)
        if before == 0 or (before > 0) == (signed > 0):
            continue  # it opened or added to a position
        if by_hand:
            reductions[market_id].append((min(abs(signed), abs(before)), price))
        if after == 0 or (after > 0) != (before > 0):
            if by_hand:
                prices = _averages_ending_last(reductions[market_id])
                closes.append(CloseByHand(market_id, trade["time"], price, before, prices))
            reductions[market_id] = []
    return closes


def _averages_ending_last(parts: list[tuple[Decimal, Decimal]]) -> tuple[Decimal, ...]:
    """The average price of the last one, two, … of `parts` (quantity, price)."""
    averages = []
    for first in range(len(parts) - 1, -1, -1):
        tail = parts[first:]
        quantity = sum((q for q, _ in tail), Decimal(0))
        averages.append(sum((q * p for q, p in tail), Decimal(0)) / quantity)
    return tuple(averages)


@dataclass
class HandOutcome:
    outcome: Outcome
    actions: list[HandAction]
    closes: list[CloseByHand]
    closed: list[ClosedTrade]
    trades_unread_ms: list[int]  # when a fault answered a read of the account's trades
    holds_ms: list[tuple[int, int]]  # Retry-After holds: the daemon's client sent nothing
    standin: LoopbackState  # the stand-in's books at the end
    hidden: list[tuple[int, dict[str, Any]]]  # user-data events no stream delivered
    rest_position_check_s: float
    rest_check_interval_s: float
    fees_paid: dict[str, Decimal] = field(default_factory=dict)  # by market id
    fees_booked: dict[str, Decimal] = field(default_factory=dict)
    # each closed trade (`booking_key`) → the stand-in's ms when the database first held it,
    # while the person traded (`Person.watch_bookings`)
    booked_seen_ms: dict[tuple[str, str, int], int] = field(default_factory=dict)


async def run_by_hand(seed: int, data_dir: Path, *, minutes: float = 4.0) -> HandOutcome:
    person = Person(seed)
    outcome = await run_campaign(seed, data_dir, minutes=minutes, beside=person.beside)
    assert person.server is not None
    state = person.server.state
    database = await SqliteRepository.open(data_dir / "quantum_trader.db", read_only=True)
    try:
        closed = await database.closed_trades()
        still_open = await database.open_positions()
    finally:
        await database.close()
    booked: dict[str, Decimal] = defaultdict(Decimal)
    for symbol, fees in [(t.symbol, t.fees_usdt) for t in closed] + [
        (p.symbol, p.fees_usdt) for p in still_open
    ]:
        booked[MARKET_IDS[symbol]] += fees
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for trade in state.trades:
        assert trade["commissionAsset"] == "USDT"
        paid[trade["symbol"]] += Decimal(trade["commission"])
    closes = closes_by_hand(state)
    unread = [t for t, _, path in person.server.faulted if path == TRADES_ROUTE]
    holds = list(person.server.retry_after_ms)
    keeper = person.keeper
    assert keeper is not None
    return HandOutcome(
        outcome,
        person.actions,
        closes,
        closed,
        unread,
        holds,
        state,
        list(person.server.streams.hidden),
        keeper.rest_position_check_s,
        keeper.rest_check_interval_s,
        dict(paid),
        dict(booked),
        dict(person.booked_seen_ms),
    )


def _hidden_about(event: dict[str, Any], market_id: str) -> str | None:
    """Which REST check reveals `event` about `market_id`: "positions", "orders" or None."""
    if event["e"] == "ACCOUNT_UPDATE":
        rows = event["a"]["P"]
        return "positions" if any(r["s"] == market_id for r in rows) else None
    if event["e"] in ("ALGO_UPDATE", "ORDER_TRADE_UPDATE"):
        return "orders" if event["o"]["s"] == market_id else None
    return None


def allowed_ticks(result: HandOutcome, market_id: str, start_ms: int, end_ms: int) -> int:
    """The ticks a span without our stop on `market_id` from `start_ms` may last: the design's
    bound, or the REST check's that reveals a user-data event hidden before or during it."""
    full_ms = round(result.rest_check_interval_s * 1000)
    checks = {
        "positions": math.ceil(result.rest_position_check_s * 1000 / TICK_MS),
        "orders": math.ceil(full_ms / TICK_MS),
    }
    allowed = STOP_WITHIN_TICKS
    for at_ms, event in result.hidden:
        which = _hidden_about(event, market_id)
        if which is not None and start_ms - full_ms <= at_ms <= end_ms:
            allowed = max(allowed, checks[which] + STOP_WITHIN_TICKS)
    return allowed


def covered_apart(
    result: HandOutcome, market_id: str, start_ms: int, end_ms: int, planned: list[int]
) -> list[tuple[int, int, list[int]]]:
    """A span without our stop as the watcher sampled it (every simulated second), split where
    the person saw the position covered by a stop of ours just before cancelling it
    (`HandAction.covered_ms`): two spans the samples merged. Each part with the ticks it
    counts: those planned up to the moment it was covered (one of them placed that stop), and
    after it those planned since. Seed 30187: a stop placed at the tick of 13:26:20.317 after
    an entry left bare and cancelled by hand 0.27 s later, re-placed the next tick — one span
    of 3 ticks, two of 2 and 1."""
    cuts = sorted(
        a.covered_ms
        for a in result.actions
        if a.market_id == market_id
        and a.covered_ms is not None
        and start_ms < a.covered_ms < end_ms
    )
    bounds = [start_ms, *cuts, end_ms]
    parts = []
    for first, last in itertools.pairwise(bounds):
        ticks = [
            t for t in planned if (first == start_ms or t > first) and (last == end_ms or t <= last)
        ]
        parts.append((first, last, ticks))
    return parts


def _booked_at(trade: ClosedTrade, prices: tuple[Decimal, ...]) -> bool:
    """Whether `trade` was booked at one of `prices` (to 12 digits: an average's last digits
    depend on the order the keeper summed it in)."""
    return any(abs(trade.exit_price - price) <= price * PRICE_DIGITS for price in prices)


def at_the_mark(close: CloseByHand, trade: ClosedTrade, result: HandOutcome) -> bool:
    """Whether the keeper may have booked `close` as `trade` at the mark, as it does only when
    the account's trades stay unreadable for `keeper.external_close_mark_after_s` after the
    tick that saw the close (KEEPER.md, "A close with nothing to book it at"; was: at once, at
    the mark of that tick, accepted here within a window around it). The trade is closed at
    that tick (`closed_at`), and booked on one at least the bound later whose read of the
    trades failed too, at a mark read then. So, of a fault answering a read of the trades or
    a Retry-After hold keeping the daemon's client from sending one:

    - one between the close and the end of the tick that saw it. Its end is not recorded; it
      is before the database first held the trade (`HandOutcome.booked_seen_ms`, sampled
      every simulated second while the person trades), else `BOOKING_TICK_TICKS` ticks past
      its start (a trade booked after the person stopped; seeds 30041, 30188). A tick can
      last far longer than the keeper's interval on the stand-in's accelerated clock: a
      request whose answer the stand-in loses waits out the client's timeout, 2 s real, 60 s
      of the 30× clock (seed 30123: a read of the trades answered 429 59 s into its tick);
    - and one at least the bound after that tick, on the tick that booked it, the trade's
      price the stand-in's mark (`mark_path`) at a second of that tick — which began at most
      `LONGEST_TICK_MS` before that read and not before the bound — or up to the 10 s before
      it a streamed mark may be old before the stream counts as silent
      (`exchange.stream_silence_s`).

    Not checked, for want of the stand-in's answered reads in the outcome: that no read of
    the trades answered in between (one would have booked them). The daemon runs the default
    bound (`campaign_settings` sets no keeper settings)."""
    seen_ms, span = ms_from_utc(trade.closed_at), BOOKING_TICK_TICKS * TICK_MS
    start = min(close.time_ms, seen_ms)
    end = result.booked_seen_ms.get(booking_key(trade), max(close.time_ms, seen_ms) + span)
    unread = [(t, t + 1) for t in result.trades_unread_ms] + result.holds_ms  # [a, b) in ms
    if not any(a <= end and start < b for a, b in unread):
        return False
    path, market = result.standin.mark_path, result.standin.markets[close.market_id]
    earliest = seen_ms + round(KeeperSettings().external_close_mark_after_s * 1000)
    for a, b in unread:
        if b < earliest or path is None:
            continue
        first = max(a - LONGEST_TICK_MS, earliest) - 10_000
        seconds = range(first // 1000, (b + span) // 1000 + 1)
        if _booked_at(trade, tuple(path.price(market, s * 1000) for s in seconds)):
            return True
    return False


def _bookings(
    closes: list[CloseByHand], manual: list[ClosedTrade], result: HandOutcome
) -> dict[int, ClosedTrade]:
    """Which closed trade booked each close by hand (by its index in `closes`): first the
    earliest booked at one of its exit prices, then, for the closes left, the earliest left
    booked from a tick before it at most a tick (a tick's time is when it started, so it may
    precede the trade it books) when it may be at the mark (`at_the_mark`)."""
    symbol_of = {m: s for s, m in MARKET_IDS.items()}
    left = sorted(manual, key=lambda t: t.closed_at)
    found: dict[int, ClosedTrade] = {}
    for index, close in enumerate(closes):
        on = [t for t in left if t.symbol == symbol_of[close.market_id]]
        match = next((t for t in on if _booked_at(t, close.exit_prices)), None)
        if match is not None:
            found[index] = match
            left.remove(match)
    for index, close in enumerate(closes):
        on = [t for t in left if t.symbol == symbol_of[close.market_id]]
        after = [t for t in on if ms_from_utc(t.closed_at) >= close.time_ms - TICK_MS]
        if index not in found and after and at_the_mark(close, after[0], result):
            found[index] = after[0]
            left.remove(after[0])
    return found


def hand_problems(seed: int, result: HandOutcome) -> list[str]:
    """What this seed's run broke, one line each (empty: nothing)."""
    # Spans of our stop's absence: checked here, each against its own bound.
    found = campaign_problems(seed, result.outcome, stop_within_ticks=sys.maxsize)
    for market_id, start_ms, end_ms, planned in result.outcome.watch.bare_spans:
        for first_ms, last_ms, ticks in covered_apart(result, market_id, start_ms, end_ms, planned):
            allowed = allowed_ticks(result, market_id, first_ms, last_ms)
            if len(ticks) > allowed:
                found.append(
                    f"seed {seed}: {market_id} without a stop for {len(ticks)} ticks "
                    f"(at most {allowed}) from {utc_from_ms(first_ms):%H:%M:%S}"
                )
    symbol_of = {m: s for s, m in MARKET_IDS.items()}
    manual = [t for t in result.closed if t.exit_reason is ExitReason.MANUAL]
    bookings = _bookings(result.closes, manual, result)
    for index, close in enumerate(result.closes):
        if index in bookings:
            manual.remove(bookings[index])
            continue
        symbol = symbol_of[close.market_id]
        booked = [
            f"{t.exit_reason} {t.side} {t.quantity} at {t.exit_price}"
            for t in result.closed
            if t.symbol == symbol
        ]
        found.append(
            f"seed {seed}: close by hand of {close.held_before} {close.market_id} at "
            f"{close.price} (stand-in ms {close.time_ms}) not booked MANUAL at its trades' "
            f"prices {[f'{p:.4f}' for p in close.exit_prices]}; "
            f"booked on the symbol: {booked}"
        )
    for trade in manual:  # not matched by a close by hand
        found.append(
            f"seed {seed}: {trade.symbol} {trade.side} {trade.quantity} booked MANUAL at "
            f"{trade.exit_price} with no close by hand at that price"
        )
    for market_id, booked_fees in sorted(result.fees_booked.items()):
        paid = result.fees_paid.get(market_id, Decimal(0))
        if booked_fees > paid + FEE_SLACK_USDT:
            found.append(
                f"seed {seed}: fees on {market_id}: booked {booked_fees}, the stand-in "
                f"charged {paid}"
            )
    return found


def summary(seed: int, result: HandOutcome) -> str:
    """One line: what the seed did (for the wide campaign's output); an action the stand-in
    did not carry out is counted with a `?`."""
    kinds = Counter(a.kind + ("" if _done(a) else "?") for a in result.actions)
    paid = sum(result.fees_paid.values(), Decimal(0))
    booked = sum(result.fees_booked.values(), Decimal(0))
    watch = result.outcome.watch
    bare = max(watch.unprotected_ticks.values(), default=0)
    return (
        f"seed {seed}: entries {watch.entries}, by hand "
        f"{dict(sorted(kinds.items()))}, closes by hand {len(result.closes)}, closed trades "
        f"{len(result.closed)}, most ticks bare {bare}, fees paid {paid:.4f} booked {booked:.4f}"
    )


def _done(action: HandAction) -> bool:
    return action.answer == "FILLED" or action.answer.startswith("canceled")


async def _one(seed: int, minutes: float) -> int:
    with tempfile.TemporaryDirectory(prefix=f"by-hand-{seed}-") as data_dir:
        result = await run_by_hand(seed, Path(data_dir), minutes=minutes)
    found = hand_problems(seed, result)
    for action in result.actions:
        at = utc_from_ms(action.time_ms).strftime("%H:%M:%S.%f")[:-3]
        print(f"BY HAND {at} {action}", flush=True)
    print(f"RESULT {summary(seed, result)}", flush=True)
    for market_id, start_ms, end_ms, planned in result.outcome.watch.bare_spans:
        ticks = ", ".join(utc_from_ms(t).strftime("%H:%M:%S.%f")[:-3] for t in planned)
        print(
            f"BARE {market_id} {utc_from_ms(start_ms):%H:%M:%S}–{utc_from_ms(end_ms):%H:%M:%S} "
            f"(sim_time), ticks planned at {ticks}",
            flush=True,
        )
    _print_books(result.standin)
    for trade in result.closed:
        print(f"CLOSED {trade.closed_at:%H:%M:%S.%f} {trade.symbol} {trade.side} {trade.quantity} "
              f"{trade.exit_reason} at {trade.exit_price} fees {trade.fees_usdt}")  # fmt: skip
    for line in found:
        print(f"PROBLEM {line}", flush=True)
    return 1 if found else 0


def _print_books(state: LoopbackState) -> None:
    """The stand-in's trades and conditional orders, for reading a failure beside the log."""
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    for t in sorted(state.trades, key=lambda t: int(t["id"])):
        at = utc_from_ms(t["time"]).strftime("%H:%M:%S.%f")[:-3]
        print(f"TRADE {at} {t['symbol']} {t['side']} {t['qty']} @ {t['price']} "
              f"fee {t['commission']} {client_of.get(t['orderId'], t['orderId'])}")  # fmt: skip
    for o in state.algo_orders.values():
        at = utc_from_ms(o["updateTime"]).strftime("%H:%M:%S.%f")[:-3]
        actual = state.orders.get(f"algo-{o['algoId']}", {})
        print(f"ALGO {at} {o['clientAlgoId']} {o['symbol']} {o['side']} {o['quantity']} "
              f"trigger {o['triggerPrice']} {o['algoStatus']} "
              f"{actual.get('status', '')} {actual.get('executedQty', '')}")  # fmt: skip


def _campaign(first: int, count: int, at_once: int, minutes: float, logs: Path) -> int:
    """Seeds FIRST..FIRST+COUNT-1, one process each, `at_once` at a time."""
    logs.mkdir(parents=True, exist_ok=True)
    pending, failed = list(range(first, first + count)), []
    running: dict[int, tuple[subprocess.Popen[bytes], IO[str]]] = {}
    while pending or running:
        while pending and len(running) < at_once:
            seed = pending.pop(0)
            out = (logs / f"{seed}.log").open("w")
            command = [sys.executable, __file__, "run", str(seed), "--minutes", str(minutes)]
            running[seed] = (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), out)
        for seed, (process, written) in list(running.items()):
            if process.poll() is None:
                continue
            written.close()
            del running[seed]
            text = (logs / f"{seed}.log").read_text(errors="replace").splitlines()
            lines = [t for t in text if t.startswith(("RESULT", "PROBLEM"))]
            print(
                "\n".join(lines) or f"seed {seed}: exit {process.returncode}, no result", flush=True
            )
            if process.returncode != 0:
                failed.append(seed)
        time.sleep(1)
    print(f"{count} seeds from {first}: {len(failed)} failed {failed}; logs in {logs}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one seed, its daemon's log on stdout")
    run.add_argument("seed", type=int)
    run.add_argument("--minutes", type=float, default=4.0)
    many = commands.add_parser("campaign", help="COUNT seeds from FIRST, a process each")
    many.add_argument("first", type=int)
    many.add_argument("count", type=int)
    many.add_argument("--at-once", type=int, default=5)
    many.add_argument("--minutes", type=float, default=4.0)
    many.add_argument("--logs", type=Path, default=Path("by-hand-logs"))
    args = parser.parse_args()
    if args.command == "run":
        return uvloop.run(_one(args.seed, args.minutes))
    return _campaign(args.first, args.count, args.at_once, args.minutes, args.logs)


if __name__ == "__main__":
    sys.exit(main())
