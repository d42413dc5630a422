"""An entry's fill against its plan: at or past its target or stop, or risking more than the
risk guard approved. Pure, but for the saved limits' reads and writes.

The sizer plans an entry at the price it reads, with its stop and target there, and the risk
guard approves its risk at the stop against its per-trade cap (`max_risk_per_trade` of the
equity). A market order fills elsewhere: a book thinner than the cost model prices, or a
market that moved while the order travelled. Was: the plan's stop and target booked whatever
the fill; a take-profit the mark had passed refused (-2021) and the next tick's TP_HIT at
about −fees, or one behind the fill resting until it booked a loss as TP_HIT; a fill risking
twice the approved risk not said at all. Now, when the fill is booked (its answer, or the
tick that books it from the entry's plan):

- **at or past its target** (long: fill ≥ target; short: ≤), or **at or past its stop**: the
  plan has nothing left to win (its reward:risk from the fill is ≤ 0, which the risk guard
  never approves), or the level the signal named as wrong has been crossed. It is exited at
  once, reduce-only (FILL_OFF_PLAN), not re-anchored: a stop and target moved to the fill
  would be a trade no signal proposed and no gate checked. Its stop still goes on first, so
  it is protected while the exit travels, `refused_exit_stop_gap_pct` beyond the fill where
  the plan's lies at or past it (Binance would refuse it); no take-profit is placed;
- **risking more than `keeper.fill_risk_warn_factor` times the approved risk** (fill to
  stop): said with both, in USDT and R; and when it also breaks the guard's per-trade cap,
  what holds more than the cap / the stop distance (down to the market order step, both the
  sale and the rest at least the minimum: `kept_within`) is sold at once, reduce-only
  (FILL_OFF_PLAN). The trade's R stays over the risk its fill took.

The most the position may hold (0: exit it) is a `Book.limits` entry (`EntryLimit`), saved with
the position's booking (namespace `entry_limits`), so a refused exit or a restart before the
order still finds it: each tick sells what exceeds it (`limit_exits`) until it holds no more.
It keeps the approved risk too: a trade closed FILL_OFF_PLAN has its R over that, the risk a
reader compares its loss with (was: over the fill's distance to the plan's stop, which a fill
just past the stop makes tiny: −2.08 USDT read as −7.27 R, an outside probe, 2026-12-06).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal, InvalidOperation

from quantum_trader.domain import ZERO, ExitReason, MarketRules, Position
from quantum_trader.keeper.book import Book, EntryLimit, EntryPlan
from quantum_trader.keeper.plan import Context, Note
from quantum_trader.keeper.protect import SendExit
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import replace

log = get_logger("keeper")
LIMITS = "entry_limits"
_REASON = ExitReason.FILL_OFF_PLAN


def check_fill(
    position: Position, plan: EntryPlan, context: Context
) -> tuple[EntryLimit | None, list[Note]]:
    """The most `position`, just opened by an entry of `plan`, may hold (0: exit it; None: as
    it is), and what to say about its fill."""
    sign, fill = position.side.sign, position.entry_price
    target, stop = plan.take_profit_price, plan.stop_price
    held = f"{position.side} {position.quantity} @ {fill}"
    exit_all = EntryLimit(ZERO, plan.risk_usdt)
    if target > 0 and (fill - target) * sign >= 0:
        detail = f"{held}, at or past its target {target} ({_planned(plan)}): nothing left to win"
        return exit_all, [_exiting("entry_filled_past_target", position, detail)]
    if (fill - stop) * sign <= 0:
        detail = f"{held}, at or past its stop {stop} ({_planned(plan)}): the plan's stop crossed"
        return exit_all, [_exiting("entry_filled_past_stop", position, detail)]
    return _risk_checked(position, plan, context)


def _risk_checked(
    position: Position, plan: EntryPlan, context: Context
) -> tuple[EntryLimit | None, list[Note]]:
    approved = plan.risk_usdt
    distance = (position.entry_price - position.initial_stop_price) * position.side.sign
    actual = distance * position.quantity
    factor = Decimal(repr(context.keeper.fill_risk_warn_factor))
    if approved is None or approved <= 0 or actual <= approved * factor:
        return None, []
    detail = (
        f"{position.side} {position.quantity} @ {position.entry_price} risks {actual:.2f} USDT "
        f"to its stop {position.initial_stop_price}, {actual / approved:.1f} R of the "
        f"{approved:.2f} approved ({_planned(plan)})"
    )
    cap, limit = plan.risk_cap_usdt, None
    if cap is None or actual <= cap:
        within = "" if cap is None else f" within the risk guard's cap {cap:.2f}:"
        detail += f";{within} kept as filled"
    else:
        keep = kept_within(position.quantity, cap / distance, context.rules.get(position.symbol))
        limit = EntryLimit(keep, approved)
        detail += (
            f"; above the risk guard's cap {cap:.2f}: selling {position.quantity - keep} now "
            f"(reduce-only, {ExitReason.FILL_OFF_PLAN}) to hold {keep}, risking "
            f"{keep * distance:.2f}"
        )
    return limit, [Note("entry_risk_above_plan", position.symbol, detail, warning=True)]


def kept_within(held: Decimal, wanted: Decimal, rules: MarketRules | None) -> Decimal:
    """The most of `held` to keep, at most `wanted`, such that what is kept and what is sold
    are each a market order Binance takes — on the market order lot's step (both filters'),
    at least its minimum — selling more where the excess alone would be below the minimum;
    0 (all of it sold) where what is kept would be. A quantity off MARKET_LOT_SIZE's step was
    refused (-1111) every tick (an outside probe, 2026-12-06: the excess was rounded on
    LOT_SIZE's step alone)."""
    wanted = max(wanted, ZERO)
    if rules is None:
        return wanted
    lot = rules.market_order_lot.lot
    keep = lot.round_down(min(wanted, held))
    if keep < held and held - keep < lot.min_quantity:  # the excess too small to sell alone
        keep = lot.round_down(max(held - lot.min_quantity, ZERO))
    return keep if keep >= lot.min_quantity else ZERO


def _exiting(event: str, position: Position, detail: str) -> Note:
    then = f"; its stop kept, no take-profit placed, exited at market now ({_REASON})"
    return Note(event, position.symbol, detail + then, warning=True)


def _planned(plan: EntryPlan) -> str:
    entry = "" if plan.entry_price is None else f" {plan.quantity} @ entry {plan.entry_price},"
    return f"plan:{entry} stop {plan.stop_price}, target {plan.take_profit_price}"


def limit_exits(position: Position, limit: EntryLimit) -> list[SendExit]:
    """The reduce-only exit that leaves `position` holding at most `limit` (0: all of it)."""
    most = limit.quantity
    if position.quantity <= most:
        return []
    quantity = position.quantity - most if most > 0 else position.quantity
    side = position.side.exit_order_side
    return [SendExit(position.symbol, side, quantity, ExitReason.FILL_OFF_PLAN)]


def with_limit(book: Book, symbol: str, limit: EntryLimit | None) -> Book:
    """`book` with `symbol`'s limit set (None: cleared)."""
    if limit is None and symbol not in book.limits:
        return book
    limits = {s: q for s, q in book.limits.items() if s != symbol}
    if limit is not None:
        limits[symbol] = limit
    return replace(book, limits=limits)


def limit_writes(
    before: Mapping[str, EntryLimit],
    after: Mapping[str, EntryLimit],
    mine: Callable[[str], bool],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The state entries to save and to delete (`LIMITS`) from `before` to `after`, for the
    symbols `mine` accepts: written with the position's bookings (keeper/bookings.py)."""
    if before is after or not (before or after):  # every tick but a fill far from its plan's
        return [], []
    saved: list[StateWrite] = [
        (LIMITS, s, _saved(limit))
        for s, limit in sorted(after.items())
        if before.get(s) != limit and mine(s)
    ]
    deleted = [(LIMITS, s) for s in sorted(before.keys() - after.keys()) if mine(s)]
    return saved, deleted


def _saved(limit: EntryLimit) -> dict[str, str]:
    risk = limit.approved_risk_usdt
    return {"quantity": str(limit.quantity)} | ({} if risk is None else {"risk_usdt": str(risk)})


async def restored(repository: Repository, held: Collection[str]) -> dict[str, EntryLimit]:
    """The limits of the positions `held` as the last run saved them; one that does not read
    back is said and dropped (the position is then kept as held), one of no position dropped;
    an approved risk that does not read back is left out (the trade's R is then its fill's)."""
    limits = {}
    for symbol, saved in (await repository.load_state(LIMITS)).items():
        if symbol not in held:  # written and deleted with its position: not expected
            await repository.delete_state(LIMITS, symbol)
            continue
        try:
            limit = Decimal(str(saved["quantity"]))
            if not limit.is_finite() or limit < 0:
                raise ValueError(f"not a quantity: {limit}")
            limits[symbol] = EntryLimit(limit, _risk(saved.get("risk_usdt")))
        except (KeyError, TypeError, ValueError, InvalidOperation) as error:
            detail = f"cannot be read again ({error!r}): the position is kept as held"
            log.warning("entry_limit_unreadable", symbol=symbol, saved=saved, detail=detail)
            await repository.delete_state(LIMITS, symbol)
    return limits


def _risk(saved: object) -> Decimal | None:
    """A saved approved risk, None when absent (saved before it was kept) or not one."""
    try:
        risk = Decimal(str(saved)) if saved is not None else None
    except InvalidOperation:
        return None
    return risk if risk is not None and risk.is_finite() and risk > 0 else None
