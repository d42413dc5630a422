"""An entry whose fill lies far from its plan, on the model exchange.

The sizer plans an entry at the mark (100: stop 97, target 106, 3 BTC, 9 USDT at risk); a
book thinner than the cost model prices, or a market that moved while the order travelled,
fills it elsewhere. At or past its target (or its stop) the plan has nothing left to win:
the keeper says so once, protects the fill with its stop, places no take-profit Binance
would refuse, and exits at once (FILL_OFF_PLAN). Risking more than planned by
`keeper.fill_risk_warn_factor`, it says so with both risks; beyond the risk guard's per-trade
cap as well, it sells the excess (reduce-only), and a restart before that still does.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, SYMBOLS, Harness, assert_protected, sized
from test_keeper_scenarios import open_stops, ours

from quantum_trader.domain import ExitReason, LotSize, MarketRules, Side
from quantum_trader.keeper.book import EntryLimit, EntryPlan
from quantum_trader.keeper.fill_check import LIMITS, kept_within, restored
from quantum_trader.keeper.ids import Purpose
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]
PLANNED_RISK = Decimal(9)  # (100 - 97) x 3


def said(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == event]


async def entered(
    side: Side, fill: Decimal | None, *, mark: Decimal | None = None, cap: Decimal | None = None
) -> tuple[Harness, list[MutableMapping[str, Any]]]:
    """A keeper that entered `side` planned at 100, filled at `fill` (the mark when None),
    the mark then at `mark` (100 when None); `cap`: the risk guard's per-trade cap."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    plan = sized(BTC, side, exchange.marks[BTC])
    if mark is not None:
        exchange.marks[BTC] = mark
    exchange.entry_fills_at = fill
    with capture_logs() as logs:
        if cap is None:
            await harness.keeper.enter(plan, harness.now)
        else:
            await harness.keeper.enter(plan, harness.now, risk_cap_usdt=cap)
    return harness, logs


@pytest.mark.parametrize(
    ("side", "fill", "target"),
    [(Side.LONG, Decimal("106.50"), "106.00"), (Side.SHORT, Decimal("93.50"), "94.00")],
)
async def test_an_entry_filled_past_its_target_is_said_protected_and_exited_at_once(
    side: Side, fill: Decimal, target: str
) -> None:
    """Filled past the target by its own impact (the mark still at 100): was, a take-profit
    placed behind the fill, and TP_HIT booked at a loss when the mark reached it."""
    harness, logs = await entered(side, fill)
    exchange = harness.exchange

    [line] = said(logs, "entry_filled_past_target")
    assert line["log_level"] == "warning"
    assert f"@ {fill}" in line["detail"]
    assert f"target {target}" in line["detail"]
    assert "entry 100" in line["detail"]
    assert ours(exchange, Purpose.TARGET) == []  # none placed: Binance would refuse it
    assert len(ours(exchange, Purpose.STOP)) == 1  # the stop went on before the exit
    assert len(ours(exchange, Purpose.EXIT)) == 1
    sent = [r.client_order_id for r in exchange.received]
    [stop], [exit_] = ours(exchange, Purpose.STOP), ours(exchange, Purpose.EXIT)
    assert sent.index(stop) < sent.index(exit_)
    assert BTC not in exchange.held
    assert BTC not in harness.keeper.positions
    assert open_stops(exchange, BTC) == []
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
    assert trade.entry_price == fill
    assert trade.r_multiple == pytest.approx(float(trade.pnl_usdt / PLANNED_RISK))
    await harness.tick()
    assert len(ours(exchange, Purpose.EXIT)) == 1  # nothing sent twice


async def test_an_entry_filled_past_its_target_with_the_mark_there_too_places_no_target() -> None:
    """A fast move: the mark at the fill too. Was: the take-profit refused (-2021,
    `take_profit_order_failed`) and the next tick's TP_HIT. The executor is told."""
    harness = await Harness.start()
    await harness.keeper.tick(harness.now, rest=True)
    plan = sized(BTC, Side.LONG, harness.exchange.marks[BTC])
    harness.exchange.marks[BTC] = Decimal("106.20")
    with capture_logs() as logs:
        result = await harness.keeper.enter(plan, harness.now)

    assert result.position is None
    assert result.detail.startswith("FILLED and closed at once")

    assert said(logs, "take_profit_order_failed") == []
    assert len(said(logs, "entry_filled_past_target")) == 1
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN


@pytest.mark.parametrize(
    ("side", "mark", "trigger"),
    [
        (Side.LONG, Decimal("96.50"), Decimal("96.30")),  # below 96.50 - 0.2 %, on the tick
        (Side.SHORT, Decimal("103.50"), Decimal("103.71")),
    ],
)
async def test_an_entry_filled_past_its_stop_keeps_a_stop_binance_accepts_and_is_exited(
    side: Side, mark: Decimal, trigger: Decimal
) -> None:
    """The market went through the stop while the entry travelled (filled at the mark): a stop
    at the plan's level would be refused (-2021): was `protective_stop_failed` and an alert."""
    harness, logs = await entered(side, None, mark=mark)
    exchange = harness.exchange

    [line] = said(logs, "entry_filled_past_stop")
    assert f"@ {mark}" in line["detail"]
    assert said(logs, "protective_stop_failed") == []
    [stop] = ours(exchange, Purpose.STOP)
    assert exchange.orders[stop].trigger_price == trigger
    assert ours(exchange, Purpose.TARGET) == []
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
    assert BTC not in exchange.held


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
async def test_a_trade_closed_fill_off_plan_has_its_r_over_the_approved_risk(side: Side) -> None:
    """Filled 0.10 past its stop, at the mark, and exited there: 0.30 USDT from the fill to
    the stop, a loss of about the fees. Was: R over those 0.30 (an outside probe: −2.08 USDT
    read as −7.27 R); now over the 9 approved, what a reader compares the loss with."""
    mark = Decimal("96.90") if side is Side.LONG else Decimal("103.10")
    harness, _ = await entered(side, None, mark=mark)

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
    assert trade.pnl_usdt < 0
    assert trade.r_multiple == pytest.approx(float(trade.pnl_usdt / PLANNED_RISK))
    assert trade.r_multiple is not None
    assert -0.1 < trade.r_multiple < 0


async def test_a_fill_off_plan_trade_amended_by_fees_read_later_keeps_its_r_over_the_approved(
) -> None:  # fmt: skip
    """Its orders' fills unread when it closed: booked without their fees, then amended once
    they are read, its R recomputed over the same approved risk."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    plan = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.entry_fills_at = Decimal("106.50")
    exchange.answers_without_fees = True
    exchange.fills_unreadable = 4
    await harness.keeper.enter(plan, harness.now)
    [booked] = await harness.repository.closed_trades()
    for _ in range(3):
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt > booked.fees_usdt  # amended
    assert trade.r_multiple == pytest.approx(float(trade.pnl_usdt / PLANNED_RISK))


async def test_a_fill_risking_more_than_planned_is_said_with_both_risks() -> None:
    """Filled at 101.80: 4.80 from the stop, 14.40 USDT at risk, 1.6 R of the plan's 9; within
    the cap (20): said, nothing sold, the target placed."""
    harness, logs = await entered(Side.LONG, Decimal("101.80"), cap=Decimal(20))
    exchange = harness.exchange

    [line] = said(logs, "entry_risk_above_plan")
    assert line["log_level"] == "warning"
    assert "14.40 USDT" in line["detail"]
    assert "1.6 R of the 9.00 approved" in line["detail"]
    assert ours(exchange, Purpose.EXIT) == []
    assert len(ours(exchange, Purpose.TARGET)) == 1
    assert exchange.held[BTC][1] == Decimal(3)


async def test_a_fill_risking_a_little_more_than_planned_is_not_said() -> None:
    """Filled at 101: 1.33 R, below the factor (1.5): the cost model's own slippage."""
    assert KEEPER.fill_risk_warn_factor == 1.5
    _, logs = await entered(Side.LONG, Decimal(101), cap=Decimal(9))

    assert said(logs, "entry_risk_above_plan") == []


async def test_a_fill_beyond_the_risk_cap_sells_the_excess_and_books_r_from_the_fill() -> None:
    """Filled at 103: 6 from the stop, 18 USDT at risk (2 R); the cap 12 allows 2 BTC, so 1 is
    sold at once, reduce-only. The trade's R is over the risk its fill took (18)."""
    harness, logs = await entered(Side.LONG, Decimal(103), cap=Decimal(12))
    exchange = harness.exchange

    [line] = said(logs, "entry_risk_above_plan")
    assert "18.00 USDT" in line["detail"]
    assert "cap 12.00: selling 1.000" in line["detail"]
    [exit_id] = ours(exchange, Purpose.EXIT)
    assert exchange.orders[exit_id].quantity == Decimal(1)
    assert exchange.held[BTC][1] == Decimal(2)
    await harness.tick()
    assert open_stops(exchange, BTC) == [(Decimal(2), Decimal(97))]  # resized
    assert_protected(harness)

    exchange.move(BTC, Decimal("96.90"))  # through the stop
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert trade.r_multiple == pytest.approx(float(trade.pnl_usdt / 18))
    assert len(ours(exchange, Purpose.EXIT)) == 1


@pytest.mark.parametrize(("fill", "left"), [(Decimal(103), Decimal(2)), (Decimal("106.5"), None)])
async def test_a_restart_before_the_excess_is_sold_sells_it_then(
    fill: Decimal, left: Decimal | None
) -> None:
    """The reduction (or the exit) refused until after a restart (as a stop between the
    booking and the order would leave it): the restarted keeper still sells it, once."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    exchange.entry_fills_at = fill
    exchange.exits_refused_until = harness.now + timedelta(seconds=2)
    plan = sized(BTC, Side.LONG, exchange.marks[BTC])
    await harness.keeper.enter(plan, harness.now, risk_cap_usdt=Decimal(12))
    assert exchange.held[BTC][1] == Decimal(3)
    assert_protected(harness)

    await harness.restart()
    await harness.tick()

    assert len(ours(exchange, Purpose.EXIT)) == 2  # refused, then sent by the restarted keeper
    if left is None:
        assert BTC not in exchange.held
        [trade] = await harness.repository.closed_trades()
        assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
        assert trade.r_multiple == pytest.approx(float(trade.pnl_usdt / PLANNED_RISK))
    else:
        assert exchange.held[BTC][1] == left
    for _ in range(3):
        await harness.tick()
        assert_protected(harness)
    assert len(ours(exchange, Purpose.EXIT)) == 2


async def test_an_entry_whose_answer_was_lost_is_checked_when_the_tick_books_it() -> None:
    """The answer lost: the tick that books the fill from the entry's plan says it and exits."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    exchange.entry_fills_at = Decimal("106.50")
    exchange.lose_next = True
    with capture_logs() as logs:
        await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
        await harness.tick()

    assert len(said(logs, "entry_filled_past_target")) == 1
    assert BTC not in exchange.held
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN


async def test_a_stop_refused_for_a_fill_past_its_target_closes_it_once() -> None:
    """Its stop refused too: the keeper's rule for a stop it cannot place (closed at market,
    PROTECTION_FAILED) closes it, and the exit decided for the fill is not sent beside it."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    exchange.entry_fills_at = Decimal("106.50")
    exchange.stops_refused = True
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    await harness.tick()

    assert len(ours(exchange, Purpose.EXIT)) == 1
    assert BTC not in exchange.held
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.PROTECTION_FAILED


async def test_a_limit_saved_before_it_kept_the_approved_risk_reads_back_without_it() -> None:
    """Then, or with a risk that does not read back, the trade's R is its fill's."""
    repository = InMemoryRepository()
    await repository.save_state(LIMITS, BTC, {"quantity": "0"})
    await repository.save_state(LIMITS, SYMBOLS[1], {"quantity": "2", "risk_usdt": "NaN"})
    assert await restored(repository, SYMBOLS) == {
        BTC: EntryLimit(Decimal(0)),
        SYMBOLS[1]: EntryLimit(Decimal(2)),
    }  # and one saved with it reads back with it: the restart test above


def test_an_entry_plan_keeps_what_was_approved_across_a_restart() -> None:
    """The plan is saved with the entry's intent: what was approved reads back, and a plan
    saved before it carried them reads back without (its fill checked for target and stop)."""
    plan = EntryPlan.of(sized(BTC, Side.LONG, Decimal(100)), Decimal(12))
    assert (plan.entry_price, plan.quantity, plan.risk_usdt, plan.risk_cap_usdt) == (
        Decimal(100),
        Decimal(3),
        PLANNED_RISK,
        Decimal(12),
    )
    assert EntryPlan.from_dict(plan.to_dict()) == plan
    older = {k: v for k, v in plan.to_dict().items() if k not in ("risk_usdt", "risk_cap_usdt")}
    older.pop("entry_price")
    older.pop("quantity")
    assert EntryPlan.from_dict(older).risk_usdt is None


# Step 1 for limit orders, 5 and a minimum of 10 for market ones (an outside probe's odd rules).
ODD_LOTS = MarketRules(
    "INJ/USDT:USDT", Decimal("0.001"), Decimal(1), Decimal(1), Decimal(5),
    market_lot=LotSize(Decimal(10), Decimal(5)),
)  # fmt: skip


@pytest.mark.parametrize(
    ("held", "wanted", "kept"),
    [
        ("60", "33.7", "30"),  # on the market step (was 33: a sale of 27, off it, refused)
        ("60", "55", "50"),  # a sale of 5 would be below the minimum: 10 sold
        ("60", "12", "10"),
        ("60", "9.9", "0"),  # the rest would be below the minimum: all of it sold
        ("15", "12", "0"),  # neither 5 sold nor 5 kept meets it
    ],
)
def test_the_excess_sold_and_the_rest_are_each_a_market_order_binance_takes(
    held: str, wanted: str, kept: str
) -> None:
    keep = kept_within(Decimal(held), Decimal(wanted), ODD_LOTS)
    assert keep == Decimal(kept)
    lot = ODD_LOTS.market_order_lot.lot
    for part in (keep, Decimal(held) - keep):
        assert part == 0 or (lot.is_on_step(part) and part >= lot.min_quantity)
