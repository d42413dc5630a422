"""Saved state read back, or one clear error naming the row that does not read back.

The repository's state table holds JSON payloads that the program alone writes; a payload
edited by hand, or damaged, used to raise whatever its parser met (a traceback at start-up).
The state restored here is fail-closed (a governor's trips, the account's day and peak, the
keeper's run number, the sizer's books): `DamagedState` stops the start with the row's name.
Rows whose loss is harmless are dropped with a warning by their owners instead (keeper/
flat_reads.py, fees_saved.py, unpriced.py, …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from quantum_trader.errors import DamagedState

_P = TypeVar("_P")
_T = TypeVar("_T")

# What a parser of a JSON payload raises on a value of the wrong kind or text (InvalidOperation
# is an ArithmeticError; `.get` of a list an AttributeError).
UNREADABLE = (AttributeError, ArithmeticError, IndexError, KeyError, TypeError, ValueError)


def read_back(namespace: str, key: str, restore: Callable[[_P], _T], payload: _P) -> _T:
    """`restore(payload)`, or `DamagedState` naming the row when it does not read back."""
    try:
        return restore(payload)
    except UNREADABLE as error:
        raise DamagedState(namespace, key, error) from error
