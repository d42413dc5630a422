"""What the keeper remembers by symbol in the repository's state beside a position's bookings
(keeper/added_unread.py, keeper/part_unread.py): the writes from one book to the next, and
the entries read back at start, one that does not read back said once and dropped."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import InvalidOperation
from typing import Any, TypeVar

from quantum_trader.log import get_logger
from quantum_trader.ports import Repository, StateWrite

log = get_logger("keeper")
T = TypeVar("T")


def instant(raw: Any) -> datetime:
    """A saved instant, its zone required."""
    at = datetime.fromisoformat(raw)
    if at.tzinfo is None:
        raise ValueError(f"a time without its zone: {raw!r}")
    return at


def state_writes(
    namespace: str,
    before: Mapping[str, T],
    after: Mapping[str, T],
    mine: Callable[[str], bool],
    encode: Callable[[T], Mapping[str, Any]],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The entries of `namespace` to save and to delete from `before` to `after`, for the
    symbols `mine` accepts: written with the position's bookings (keeper/bookings.py)."""
    if before is after or not (before or after):  # most ticks
        return [], []
    saved: list[StateWrite] = [
        (namespace, s, encode(a))
        for s, a in sorted(after.items())
        if before.get(s) != a and mine(s)
    ]
    deleted = [(namespace, s) for s in sorted(before.keys() - after.keys()) if mine(s)]
    return saved, deleted


async def restored_by_symbol(
    repository: Repository,
    namespace: str,
    held: Collection[str],
    decode: Callable[[Mapping[str, Any]], T],
    lost: str,
) -> dict[str, T]:
    """The entries of `namespace` for the symbols `held` as the last run saved them; those of
    other symbols deleted; one that does not read back said (`{namespace}_unreadable`, with
    `lost`: what is given up) and deleted."""
    found = {}
    for symbol, saved in (await repository.load_state(namespace)).items():
        if symbol not in held:
            await repository.delete_state(namespace, symbol)
            continue
        try:
            found[symbol] = decode(saved)
        except (KeyError, TypeError, ValueError, InvalidOperation) as error:
            detail = f"cannot be read again ({error!r}): {lost}"
            log.warning(f"{namespace}_unreadable", symbol=symbol, saved=saved, detail=detail)
            await repository.delete_state(namespace, symbol)
    return found
