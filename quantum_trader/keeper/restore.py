"""The keeper's books as the last run left them, read back from the repository at start-up."""

from __future__ import annotations

from functools import partial

from quantum_trader.keeper import added_unread, fees_saved, fill_check, part_unread
from quantum_trader.keeper.book import Book, Intent, is_unsettled
from quantum_trader.keeper.external_saved import ExternalBooked
from quantum_trader.keeper.ids import ClientOrderIds, is_ours
from quantum_trader.keeper.orders import INTENTS
from quantum_trader.keeper.unpriced import restored as unpriced_restored
from quantum_trader.ports import Repository
from quantum_trader.storage.saved import read_back

RUN_STATE = ("keeper", "run")


async def restored(
    repository: Repository, *, keep_closed: bool = True
) -> tuple[Book, ClientOrderIds, ExternalBooked]:
    """Open positions, unsettled orders of ours, our working stops and take-profits, our orders
    whose fees are unread, the closes outside the program awaiting their price
    (keeper/unpriced.py), the limits of fills far from their plan (keeper/fill_check.py), the
    growths by hand whose trades are unread (keeper/added_unread.py), the parts booked at the
    mark meanwhile (keeper/part_unread.py) and the account's
    trades the positions were reduced by (keeper/external_saved.py); and the ids
    of this run, whose number is saved one up, so that ids never repeat across restarts.
    `keep_closed`: keep the trades of positions gone (`ExternalBooked`)."""
    positions = {p.symbol: p for p in await repository.open_positions()}
    extras = await repository.load_state(INTENTS)
    ours = [o for o in await repository.open_orders() if is_ours(o.client_order_id)]
    intents = {
        o.client_order_id: read_back(
            INTENTS, o.client_order_id, partial(Intent.restore, o), extras.get(o.client_order_id)
        )
        for o in ours
        if is_unsettled(o)
    }
    working = {o.client_order_id: o for o in ours if not is_unsettled(o)}
    fees_unread = await fees_saved.restored(repository)
    unpriced = await unpriced_restored(repository)
    limits = await fill_check.restored(repository, positions)
    held = positions.keys() | unpriced.keys()
    added = await added_unread.restored(repository, held)
    parts = await part_unread.restored(repository, held)
    external = await ExternalBooked.restored(repository, held, keep_closed=keep_closed)
    saved = (await repository.load_state(RUN_STATE[0])).get(RUN_STATE[1], {})
    run = read_back(*RUN_STATE, _run_number, saved) + 1
    await repository.save_state(*RUN_STATE, {"n": run})
    book = Book(
        positions,
        intents,
        working=working,
        fees_unread=fees_unread,
        unpriced=unpriced,
        limits=limits,
        added_unread=added,
        parts_unread=parts,
    )
    return book, ClientOrderIds(run), external


def _run_number(saved: dict[str, object]) -> int:
    """The last run's number: an int, not a bool or a float that `int()` would round (the ids
    of this run must not repeat an earlier run's)."""
    n = saved.get("n", 0)
    if type(n) is not int or n < 0:
        raise ValueError(f"not a run number: {n!r}")
    return n
