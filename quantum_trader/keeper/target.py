"""A position's take-profit placed again when it is missing. Pure; the keeper executes it.

An entry's take-profit goes on with its stop (`protect.entry_target`). One gone since —
cancelled by hand, expired, refused when it was placed, or never sent (the process stopped
between the entry's booking, saved first, and its sending) — is placed again by a later tick:
a reduce-only TAKE_PROFIT_MARKET for the position's quantity at its target, after the symbol's
other actions (its stop first: the stop is the protection, and a take-profit refused or rate
limited then holds back nothing). The position's `take_profit_order_id` says which is its own:
None once the tick that settles it found it ended unfilled or unknown to the exchange
(keeper/settle.py); an order of ours that executed stays named, so no take-profit follows one
that took profit (keeper/settle.py `took_profit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import MarketRules, Order, OrderKind, Position
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.protect import OrderAction, PlaceTarget, closes_all
from quantum_trader.monitor.settings import MonitorSettings


def target_again(
    position: Position,
    listed: Sequence[Order],
    planned: Sequence[OrderAction],
    mark: Decimal | None,
    refused_at: datetime | None,
    now: datetime,
    settings: MonitorSettings,
    rules: MarketRules | None,
) -> list[PlaceTarget]:
    """The take-profit `position` needs placed again this tick, if any (see the module).

    None while it names one of its own (listed; or gone and not settled yet: its lookup
    failed, its fills are unread; or one that executed), when its plan has no target, while a
    take-profit of ours on the symbol met its trigger and is not done (`listed`: it may be
    executing), when an exit `planned` this tick closes all of it, without a mark read, when
    the mark is at or past the target (Binance refuses it, -2021 "Order would immediately
    trigger"; the stop maths exits at market on this tick), or within
    `take_profit_retry_s` of a refusal (`refused_at`). The caller waits out every other
    unsettled order of ours on the symbol. The quantity is the position's: a part exit
    `planned` with it leaves it larger than the rest, and one larger than the position is
    cancelled by a later tick (protect.py `check_protection`: Binance's FAQ refuses a
    reduce-only order larger than the position, exempting market and stop-market ones only,
    so it might close nothing when it fires) and placed again here for what is held.

    Only for a position an entry of ours opened: one adopted from the exchange (opened by
    hand, a flip's other side) gets a stop and never had a take-profit — its target is the
    keeper's default (`keeper.adopt_reward_risk`), which the stop maths exits at.
    """
    if position.take_profit_order_id is not None or position.take_profit_price <= 0:
        return []
    if not is_ours(position.entry_order_id):  # adopted: its target is no plan of ours
        return []
    retry = timedelta(seconds=settings.take_profit_retry_s)
    if refused_at is not None and now - refused_at < retry:
        return []
    if any(_firing_target(o) for o in listed):
        return []
    if closes_all(position, planned):
        return []
    target = position.take_profit_price
    trigger = rules.round_price(target) if rules is not None else target
    if mark is None or not mark.is_finite() or mark <= 0:
        return []  # it may have passed the target: wait for a mark rather than be refused
    if (mark - trigger) * position.side.sign >= 0:
        return []
    side = position.side.exit_order_side
    return [PlaceTarget(position.symbol, side, position.quantity, trigger)]


def _firing_target(order: Order) -> bool:
    return (
        order.kind is OrderKind.TAKE_PROFIT_MARKET
        and is_ours(order.client_order_id)
        and order.triggered_at is not None
        and not order.status.is_final
    )
