"""The orders whose fees are unread (keeper/fees.py) as the last run saved them.

Each is saved in the repository's state (namespace `FEES_UNREAD`, by client order id) with
what the orders table does not hold (`UnreadFees.to_dict`). An entry that cannot be restored
(its JSON edited by hand, or written by a run that saved something else) or whose order is
not in the orders table is said once, with what was saved, and dropped: its fee is left out,
as one given up is (`fees_unread_given_up`), and the keeper starts all the same.
"""

from __future__ import annotations

from typing import Any

from quantum_trader.keeper.book import UnreadFees
from quantum_trader.keeper.fees import FEES_UNREAD
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository

log = get_logger("keeper")
_UNREADABLE = (AttributeError, ArithmeticError, KeyError, TypeError, ValueError)


async def restored(repository: Repository) -> dict[str, UnreadFees]:
    """The orders whose fees are unread, by client order id, as saved."""
    fees_unread = {}
    for cid, saved in (await repository.load_state(FEES_UNREAD)).items():
        order = await repository.get_order(cid)
        if order is None:
            await _dropped(repository, "fees_unread_order_missing", cid, saved, "not stored")
            continue
        try:
            fees_unread[cid] = UnreadFees.restore(order, saved)
        except _UNREADABLE as error:
            await _dropped(repository, "fees_unread_unreadable", cid, saved, repr(error))
    return fees_unread


async def _dropped(repository: Repository, event: str, cid: str, saved: Any, why: str) -> None:
    log.warning(
        event,
        client_order_id=cid,
        saved=saved,
        detail=(
            f"the order's saved unread fee cannot be read again ({why}): its fee is left out "
            "of its position's or closed trade's fees; the entry is dropped"
        ),
    )
    await repository.delete_state(FEES_UNREAD, cid)
