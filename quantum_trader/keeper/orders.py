"""Sending one of our orders: the intent is written before the request leaves.

Every order is saved PENDING with the keeper's extra (its plan or exit reason), in one write,
before it is sent, so a crash leaves an intent the next tick resolves by client order id. After an
ambiguous failure the order is looked up by that id at once — but for an entry, whose stop the
keeper places blind first and whose lookup the REST tick after it makes (keeper/entry.py: a
lookup retried against a slow exchange left the entry's fill bare for up to half a minute);
nothing is sent twice blindly.
"""

from __future__ import annotations

from datetime import datetime

from quantum_trader.domain import Order, OrderStatus
from quantum_trader.errors import MarketDataError, OrderRejected, OrderStateUnknown, RetryLater
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.ids import Purpose, as_sent, purpose_of
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange, Repository, Writes
from quantum_trader.record import replace

log = get_logger("keeper")
INTENTS = "intents"


class OrderDesk:
    """Sends orders and records each step; the keeper is its only caller."""

    def __init__(self, exchange: Exchange, repository: Repository) -> None:
        self._exchange = exchange
        self._repository = repository

    async def send(self, intent: Intent, now: datetime) -> Order | None:
        """Record the intent, send it, return the exchange's answer.

        None when the outcome is unknown (the intent is then saved UNKNOWN and stays for the
        next tick). Raises OrderRejected after recording the rejection, and RetryLater (a rate
        limit: the request was not executed) after recording it as not sent.
        """
        cid = intent.client_order_id
        extra = (INTENTS, cid, intent.extra_to_dict())
        await self._repository.write(Writes(orders=[intent.order], state=[extra]))
        request = intent.request
        try:
            return await self._exchange.place_order(request)
        except (OrderRejected, RetryLater) as error:  # refused, or held back before it left
            rejected = replace(
                intent.order, status=OrderStatus.REJECTED, detail=str(error), updated_at=now
            )
            await self._repository.write(Writes(orders=[rejected], state_deleted=[(INTENTS, cid)]))
            raise
        except OrderStateUnknown as error:
            if purpose_of(cid) is Purpose.ENTRY:  # protected blind first, looked up after
                await self._unknown(intent, error, now)
                return None
            return await self._look_up_now(intent, error, now)

    async def _look_up_now(
        self, intent: Intent, error: OrderStateUnknown, now: datetime
    ) -> Order | None:
        try:
            found = await self._exchange.fetch_order(intent.symbol, intent.client_order_id)
        except (MarketDataError, RetryLater) as lookup_error:  # unreadable: as if not made
            found = None
            log.warning(
                "order_lookup_failed",
                client_order_id=intent.client_order_id,
                error=str(lookup_error),
            )
        if found is None:
            await self._unknown(intent, error, now)
            return None
        log.warning("order_state_recovered", client_order_id=intent.client_order_id)
        return as_sent(found)

    async def _unknown(self, intent: Intent, error: OrderStateUnknown, now: datetime) -> None:
        """Saved UNKNOWN, said: the next tick looks it up."""
        await self._repository.save_order(
            replace(intent.order, status=OrderStatus.UNKNOWN, detail=str(error), updated_at=now)
        )
        log.error("order_state_unknown", client_order_id=intent.client_order_id, error=str(error))
