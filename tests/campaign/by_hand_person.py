"""The person of the campaign with a person trading by hand (by_hand.py): now and then it
reduces, closes, flips or adds to a position the account holds, cancels our stop or our
take-profit, or opens a position on a symbol of the daemon's that nothing holds, through the
stand-in's HTTP API as a second client, everything drawn from the seed. The draw gained
`cancel_target` on 2026-12-04, and `add` and `open` (and a side for each turn) later that
day (the others' proportions kept): a seed run before either drew other actions at other
times. `round_trip` (an open and its close sent back to back: within one look of the
keeper's, often; 2026-12-05) is drawn only with `round_trips` (by_hand.py `--round-trips`):
its seeds draw otherwise, and the suite's seeds keep theirs (why: docs/STATUS.md, *The
person's round trips*)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import aiohttp
from campaign import MARKET_IDS
from campaign_watch import TickCounter, unprotected
from loopback.faults import Fault, Outage
from loopback.server import SECOND_CLIENT, LoopbackBinance
from loopback.state import LoopbackState

from quantum_trader.app import Runtime
from quantum_trader.clock import SimulatedClock, ms_from_utc
from quantum_trader.domain import ClosedTrade
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.keeper.settings import KeeperSettings

PERSON_PREFIX = "web_"
# What the person does, with its weight in the draw.
KINDS = ("reduce", "close", "flip", "cancel_stop", "cancel_target", "add", "open")
WEIGHTS = (30, 25, 25, 20, 20, 10, 10)
WITH_ROUND_TRIPS = ((*KINDS, "round_trip"), (*WEIGHTS, 10))
# The notional of a position the person opens (`open`), before the draw's share (0.2–0.8)
# scales it by 0.7–1.3: 1,400–2,600 USDT, as our entries on the stand-in's markets (seed
# 30001: 1,580 USDT of BTC, 2,180 of ETH, 3,000 of BNB), well above every market's minimum
# notional and within the account's margin beside ours.
OPEN_NOTIONAL_USDT = Decimal(2000)
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


@dataclass(frozen=True, slots=True)
class HandAction:
    """What the person did: `kind` on `market_id` at the stand-in's `time_ms`, `quantity`
    the order's (0 for a cancel), `answer` the stand-in's order status or error;
    `covered_ms`, for a stop's cancel, when the person last saw the position covered by a
    stop of ours, just before cancelling it (None: it was not); `cancelled`, for a cancel,
    the client id of the order of ours it cancelled ("" if none was)."""

    time_ms: int
    market_id: str
    kind: str
    client_id: str
    quantity: Decimal
    answer: str
    covered_ms: int | None = None
    cancelled: str = ""


@dataclass(frozen=True, slots=True)
class Draw:
    """A turn's draws beside its kind: `pick` the symbol (of those held, or free for an
    open), `share` the size, `buy` an open's side."""

    pick: float
    share: float
    buy: bool


class Person:
    """Trades by hand beside the daemon, everything drawn from `seed`."""

    def __init__(self, seed: int, *, round_trips: bool = False) -> None:
        self.seed = seed
        drawn: tuple[tuple[str, ...], tuple[int, ...]] = (
            WITH_ROUND_TRIPS if round_trips else (KINDS, WEIGHTS)
        )
        self._kinds, self._weights = drawn
        self._rng = random.Random(f"by-hand-{seed}")
        self.actions: list[HandAction] = []
        self.server: LoopbackBinance | None = None  # the stand-in, once beside one
        self.keeper: KeeperSettings | None = None  # the daemon's, once beside one
        self.take_profit_retry_s = 0.0  # the daemon's `monitor.take_profit_retry_s`, likewise
        # each closed trade (`booking_key`) → the stand-in's ms when the database first held it
        self.booked_seen_ms: dict[tuple[str, str, int], int] = {}
        # every fault the stand-in drew for a request of the daemon's about a symbol, lost
        # answers too (`server.faulted` keeps neither): (stand-in ms, market id, method, path)
        self.faults_on: list[tuple[int, str, str, str]] = []
        self.outages: list[Outage] = []  # the read outages armed (cleared at the settling)

    def beside(
        self, server: LoopbackBinance, runtime: Runtime
    ) -> Callable[[asyncio.Event], Awaitable[None]]:
        first = self.server is None  # beside a daemon started again: recording already
        self.server, self.keeper = server, runtime.settings.keeper
        self.take_profit_retry_s = runtime.settings.monitor.take_profit_retry_s
        self.outages = list(server.outages)
        take_fault = server._take_fault

        def recording(method: str, path: str, params: dict[str, str]) -> Fault | None:
            fault = take_fault(method, path, params)
            market_id = params.get("symbol") or _named(params)
            if fault is not None and market_id:
                self.faults_on.append((server.state.now_ms, market_id, method, path))
            return fault

        if first:
            server._take_fault = recording  # type: ignore[method-assign]

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
                kind = self._rng.choices(self._kinds, self._weights)[0]
                pick, share = self._rng.random(), self._rng.uniform(0.2, 0.8)
                buy = self._rng.random() < 0.5  # an open's side
                if not stopping.is_set():
                    await self._act(session, server.state, kind, Draw(pick, share, buy))

    async def while_down(
        self, server: LoopbackBinance, clock: SimulatedClock, down_s: float
    ) -> None:
        """Act now and then (`SECONDS_BETWEEN`) for `down_s` simulated seconds while the
        daemon is stopped (campaign.Restart): what the first look after its start finds."""
        headers = {SECOND_CLIENT: "person"}
        end = clock.now() + timedelta(seconds=down_s)
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            while True:
                until = clock.now() + timedelta(seconds=self._rng.uniform(*SECONDS_BETWEEN))
                await clock.sleep_until(min(until, end))
                if clock.now() >= end:
                    return
                kind = self._rng.choices(self._kinds, self._weights)[0]
                pick, share = self._rng.random(), self._rng.uniform(0.2, 0.8)
                buy = self._rng.random() < 0.5
                await self._act(session, server.state, kind, Draw(pick, share, buy))

    async def _act(
        self,
        session: aiohttp.ClientSession,
        state: LoopbackState,
        kind: str,
        draw: Draw,
    ) -> None:
        async with session.get("/fapi/v3/positionRisk") as answer:
            rows = await answer.json()
        held = {r["symbol"]: Decimal(r["positionAmt"]) for r in rows if Decimal(r["positionAmt"])}
        if kind in ("open", "round_trip"):
            await self._open(session, state, held, draw, back=kind == "round_trip")
            return
        if not held:
            return
        market_id = sorted(held)[int(draw.pick * len(held))]
        client_id = f"{PERSON_PREFIX}{self.seed}_{len(self.actions)}"
        covered_ms, cancelled = None, ""
        if kind in ("cancel_stop", "cancel_target"):
            order_type = "STOP_MARKET" if kind == "cancel_stop" else "TAKE_PROFIT_MARKET"
            ours = await self._ours(session, market_id, order_type)
            if ours is None:
                answer_text = f"no {order_type} of ours"
            else:
                if kind == "cancel_stop" and market_id not in unprotected(state):
                    covered_ms = state.now_ms
                answer_text = await self._cancel(session, market_id, ours)
                cancelled = ours if answer_text.startswith("canceled") else ""
            quantity = Decimal(0)
        else:
            quantity = _quantity(kind, held[market_id], draw.share, state, market_id)
            long = held[market_id] > 0
            side = "BUY" if long == (kind == "add") else "SELL"
            answer_text = await self._order(session, market_id, side, quantity, client_id, kind)
        action = HandAction(state.now_ms, market_id, kind, client_id, quantity, answer_text)
        self.actions.append(replace(action, covered_ms=covered_ms, cancelled=cancelled))

    async def _open(
        self,
        session: aiohttp.ClientSession,
        state: LoopbackState,
        held: dict[str, Decimal],
        draw: Draw,
        *,
        back: bool = False,
    ) -> None:
        """A position on a symbol of the daemon's that nothing holds (`OPEN_NOTIONAL_USDT`),
        closed at once by a second order sent as soon as the first was answered (`back`);
        nothing when every one is held, or before the daemon's first entry reached the
        stand-in: positions opened by hand before it, adopted, refuse its entries on their
        symbols, and a seed whose first cycles a fault answered made no entry at all (seed
        30002 in the suite on a loaded machine; a campaign must trade to prove anything)."""
        free = sorted(m for m in MARKET_IDS.values() if m not in held)
        if not free or not _entered(state):
            return
        market_id = free[int(draw.pick * len(free))]
        client_id = f"{PERSON_PREFIX}{self.seed}_{len(self.actions)}"
        quantity = opening_quantity(draw.share, state, market_id)
        side = "BUY" if draw.buy else "SELL"
        answer_text = await self._order(session, market_id, side, quantity, client_id, "open")
        self.actions.append(
            HandAction(state.now_ms, market_id, "open", client_id, quantity, answer_text)
        )
        if back:
            client_id = f"{PERSON_PREFIX}{self.seed}_{len(self.actions)}"
            other = "SELL" if draw.buy else "BUY"
            answer_text = await self._order(session, market_id, other, quantity, client_id, "close")
            self.actions.append(
                HandAction(state.now_ms, market_id, "round_trip", client_id, quantity, answer_text)
            )

    async def _order(
        self,
        session: aiohttp.ClientSession,
        market_id: str,
        side: str,
        quantity: Decimal,
        client_id: str,
        kind: str,
    ) -> str:
        """A market order by hand; reduce-only but for a flip, an addition and an open."""
        params = {"symbol": market_id, "side": side, "type": "MARKET",
                  "quantity": str(quantity), "newClientOrderId": client_id}  # fmt: skip
        if kind not in ("flip", "add", "open"):
            params["reduceOnly"] = "true"
        async with session.post("/fapi/v1/order", data=params) as answer:
            body = await answer.json()
        return str(body.get("status") or f"{body.get('code')} {body.get('msg')}")

    async def _ours(
        self, session: aiohttp.ClientSession, market_id: str, order_type: str
    ) -> str | None:
        """The client id of an open conditional order of ours of `order_type` on `market_id`
        (a stop, a take-profit), None if there is none."""
        async with session.get("/fapi/v1/openAlgoOrders", params={"symbol": market_id}) as got:
            ours = [
                o["clientAlgoId"]
                for o in await got.json()
                if is_ours(o["clientAlgoId"]) and o["orderType"] == order_type
            ]
        return ours[0] if ours else None

    async def _cancel(self, session: aiohttp.ClientSession, market_id: str, client_id: str) -> str:
        params = {"symbol": market_id, "clientAlgoId": client_id}
        async with session.delete("/fapi/v1/algoOrder", params=params) as answer:
            body: dict[str, Any] = await answer.json()
        return f"canceled {client_id}" if answer.status == 200 else f"{body.get('msg')}"


def _named(params: dict[str, str]) -> str | None:
    """The market id an order of ours that `params` name is on, for a request without a
    symbol (a conditional order's cancel and lookup name it by client id alone): our ids
    carry the base asset (`keeper.ids`: qt-t-BNB-… → BNBUSDT)."""
    for key in ("clientAlgoId", "origClientOrderId"):
        client_id = params.get(key, "")
        if is_ours(client_id):
            return client_id.split("-")[2] + "USDT"
    return None


def _quantity(
    kind: str, held: Decimal, share: float, state: LoopbackState, market_id: str
) -> Decimal:
    """The person's order: a share of the position (at least a step, less than all of it,
    when it has two steps or more), all of it, or twice it (a flip); an addition the same
    share (at least a step)."""
    size, step = abs(held), Decimal(state.markets[market_id].step_size)
    part = (size * Decimal(str(share)) / step).to_integral_value(ROUND_DOWN) * step
    if kind == "flip":
        return 2 * size
    if kind == "add":
        return max(part, step)
    if kind == "close" or size < 2 * step:
        return size
    return min(max(part, step), size - step)


def _entered(state: LoopbackState) -> bool:
    """Whether an entry of ours has reached the stand-in."""
    return any(
        purpose_of(str(o.get("clientOrderId", ""))) is Purpose.ENTRY for o in state.orders.values()
    )


def opening_quantity(share: float, state: LoopbackState, market_id: str) -> Decimal:
    """A position the person opens: `OPEN_NOTIONAL_USDT` scaled by 0.5 + `share` at the
    stand-in's mark, rounded down to the step (at least a step)."""
    step = Decimal(state.markets[market_id].step_size)
    notional = OPEN_NOTIONAL_USDT * (Decimal("0.5") + Decimal(str(share)))
    steps = (notional / state.mark(market_id) / step).to_integral_value(ROUND_DOWN)
    return max(steps, Decimal(1)) * step


def booking_key(trade: ClosedTrade) -> tuple[str, str, int]:
    """A closed trade's key in the database: its symbol, entry order and close time."""
    return trade.symbol, trade.entry_order_id, ms_from_utc(trade.closed_at)
