"""Moving a close-all stop (Binance's closePosition, keeper/protect.py `fits_quantity_stop`).

Binance keeps one close-all order per symbol and side (-4130), so a new one goes on only once
ours on that side is cancelled, and the position is without a stop between the two requests.
So: nothing is placed while a cancel is unconfirmed (the next tick looks the order up); a
replacement that fails puts the cancelled one back at its trigger at once, and says so in an
alert should that fail too; and a placement refused because another close-all order holds the
side (a person's, or ours still executing) is no reason to close at market — that order
protects — so it is said once and tried again every minute. A part of `Carrier`
(keeper/carry.py), beside carry_actions.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from quantum_trader.domain import ZERO, ExitReason, Order, OrderSide
from quantum_trader.errors import MarketDataError, OrderRejected, RetryLater
from quantum_trader.keeper.alerts import AlertListener, ProtectionAlert, tell
from quantum_trader.keeper.book import Book, EntryPlan
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.protect import CancelOrder, PlaceStop
from quantum_trader.log import get_logger

log = get_logger("keeper")


class Cancelled(StrEnum):
    """How a cancel of ours ended."""

    YES = "YES"
    ENDED = "ENDED"  # the order had ended already (filled, expired, cancelled): not by us
    UNCONFIRMED = "UNCONFIRMED"  # the exchange did not confirm it: the next tick looks it up


RETRY_BESIDE_ANOTHER = timedelta(seconds=60)


class CloseAllStops:
    """The close-all part of `Carrier`, which sets these attributes and gives `send` (an order
    sent and its answer booked; declared here for type checking, so an override that drifts
    from it fails mypy) and `_cancel` (carry_actions.py)."""

    book: Book
    alert_listeners: list[AlertListener]
    # Ours cancelled ahead of a close-all placement: the plan's own cancel of each is spared.
    _cancelled_ahead: set[str]
    # By symbol, until when a close-all placement waits after another close-all order held
    # the side (`held_by_another`).
    _held_off: dict[str, datetime]

    if TYPE_CHECKING:

        async def _cancel(self, action: CancelOrder, now: datetime) -> Cancelled: ...

        async def send(
            self,
            purpose: Purpose,
            symbol: str,
            side: OrderSide,
            quantity: Decimal,
            now: datetime,
            context: Context,
            *,
            trigger: Decimal | None = None,
            reason: ExitReason | None = None,
            plan: EntryPlan | None = None,
            client_order_id: str | None = None,
            close_position: bool = False,
        ) -> Order | None: ...

    async def cancel_close_all(self, action: PlaceStop, now: datetime) -> list[Order] | None:
        """Cancel our open close-all stops on `action`'s symbol and side but one executing (it
        closes the position as it is; Binance refuses the cancel): those cancelled, or None
        when a cancel was not confirmed (nothing may be placed beside it)."""
        cancelled = []
        for order in list(self.book.working.values()):
            if not (
                order.close_position
                and order.symbol == action.symbol
                and order.side is action.side
                and order.triggered_at is None
                and not order.status.is_final
            ):
                continue
            outcome = await self._cancel(CancelOrder(order.symbol, order.client_order_id), now)
            if outcome is Cancelled.UNCONFIRMED:
                detail = (
                    f"close-all stop {order.client_order_id} not confirmed cancelled: Binance "
                    f"keeps one a side, so the move to {action.trigger} waits for the next tick"
                )
                log.warning("protective_stop_move_deferred", why=action.why, detail=detail)
                return None
            self._cancelled_ahead.add(order.client_order_id)
            if outcome is Cancelled.YES:
                cancelled.append(order)
        return cancelled

    def waits_beside_another(self, action: PlaceStop, now: datetime) -> bool:
        """Whether `action`'s close-all placement waits: another close-all order held the
        side less than `RETRY_BESIDE_ANOTHER` ago (`held_by_another`)."""
        until = self._held_off.get(action.symbol)
        if until is None or now >= until:
            return False
        log.info("protective_stop_waits", why=action.why, detail=f"until {until.isoformat()}")
        return True

    def held_by_another(self, action: PlaceStop, error: OrderRejected, now: datetime) -> None:
        """A close-all order not ours (or ours still executing) holds `action`'s side and
        protects the position: said once, then tried again every `RETRY_BESIDE_ANOTHER`
        (was: a refusal, an alert and a close at market every tick)."""
        first = action.symbol not in self._held_off
        self._held_off[action.symbol] = now + RETRY_BESIDE_ANOTHER
        if not first:
            log.info("protective_stop_still_refused", why=action.why, detail=str(error))
            return
        detail = (
            f"stop ({action.why}) at {action.trigger} refused: {error}; a close-all order not "
            "ours (or ours still executing) holds this side and protects the position at its "
            f"own trigger: remove it for ours to go on; tried again every "
            f"{RETRY_BESIDE_ANOTHER.total_seconds():g} s"
        )
        log.error("protective_stop_failed", why=action.why, detail=detail)
        alert = ProtectionAlert(now, action.symbol, "protective_stop_failed", detail)
        tell(self.alert_listeners, alert)

    def placed(self, symbol: str) -> None:
        """A stop of ours went on: a wait beside another close-all order ends."""
        self._held_off.pop(symbol, None)

    def spared_cancel(self, client_order_id: str) -> bool:
        """Whether a plan's cancel of `client_order_id` is done already (`cancel_close_all`)."""
        if client_order_id not in self._cancelled_ahead:
            return False
        self._cancelled_ahead.discard(client_order_id)
        return True

    async def put_back(
        self, action: PlaceStop, old: Order, error: Exception, now: datetime, context: Context
    ) -> None:
        """`action`'s close-all failed after `old` was cancelled for it: place `old`'s again."""
        try:
            answer = await self.send(
                Purpose.STOP, action.symbol, action.side, ZERO, now, context,
                trigger=old.trigger_price, close_position=True,
            )  # fmt: skip
        except (OrderRejected, RetryLater, MarketDataError) as again:
            detail = (
                f"close-all stop moved from {old.trigger_price} to {action.trigger}: the new one "
                f"failed ({error}) and the old one could not go back ({again}); without a stop "
                "until the next tick places one"
            )
            log.error("protective_stop_failed", why=action.why, detail=detail)
            alert = ProtectionAlert(now, action.symbol, "protective_stop_failed", detail)
            tell(self.alert_listeners, alert)
            return
        if answer is not None:
            log.warning(
                "protective_stop_put_back", trigger=str(old.trigger_price),
                detail=f"the close-all stop's move to {action.trigger} failed: {error}",
            )  # fmt: skip
