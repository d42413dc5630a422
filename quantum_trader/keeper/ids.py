"""Our client order ids: the one scheme that says which orders are ours and what each is for.

`qt-{kind}-{base}-{ms36}-{run36}.{seq36}`: kind `e` entry, `x` exit, `s` protective stop, `t`
take-profit; `base` the symbol's base asset (≤ 10 characters); `ms36` the (simulated) time in
milliseconds; `run36` this process's start number (persisted, so ids stay unique across
restarts even when a replay resumes at a time it already passed); `seq36` a counter. Always
within Binance's rule ^[.A-Z:/a-z0-9_-]{1,36}$ for `newClientOrderId` and `clientAlgoId`.

Every order whose id starts with `qt-` is ours; anything else (an order placed by hand, by
another program) is never touched. Ids written by earlier versions (`qt-sl-…` for stops) keep
meaning what they meant. An id of ours also says how the order was sent: every one but an
entry reduce-only (keeper/carry.py), so an answer that leaves reduceOnly out is read so
(`as_sent`).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Order
from quantum_trader.record import replace

OUR_PREFIX = "qt-"
VALID_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE_CHARS = re.compile(r"[^A-Za-z0-9]")
_BASE_MAX = 10


class Purpose(StrEnum):
    """What one of our orders is for."""

    ENTRY = "e"
    EXIT = "x"
    STOP = "s"
    TARGET = "t"


def is_ours(client_order_id: str) -> bool:
    return client_order_id.startswith(OUR_PREFIX)


def purpose_of(client_order_id: str) -> Purpose | None:
    """The purpose an id of ours names; None for an id that is not ours."""
    if not is_ours(client_order_id):
        return None
    kind = client_order_id[len(OUR_PREFIX) :].split("-", 1)[0]
    if kind == "sl":  # stops of earlier versions
        return Purpose.STOP
    try:
        return Purpose(kind)
    except ValueError:
        return None


def as_sent(order: Order) -> Order:
    """`order` with `reduce_only` as this program sent it when the exchange's answer left the
    field out (None): was read as false, so every stop of ours looked like one that could open
    a position and each tick replaced it (an outside-style probe, 2026-12-04). Exits, stops
    and take-profits of ours are reduce-only, entries not; an order not ours is left as
    answered (the keeper never touches it)."""
    if order.reduce_only is not None or not is_ours(order.client_order_id):
        return order
    reducing = purpose_of(order.client_order_id) in _REDUCING
    return replace(order, reduce_only=reducing)


_REDUCING = frozenset({Purpose.EXIT, Purpose.STOP, Purpose.TARGET})


def base36(value: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out


class ClientOrderIds:
    """Issue ids for one run of the program; `run` is its persisted start number."""

    def __init__(self, run: int = 0) -> None:
        self._run = base36(run)
        self._sequence = 0
        # By purpose and symbol, the id's start: `qt-{kind}-{base}-`, made once a run.
        self._starts: dict[tuple[Purpose, str], str] = {}

    def next(self, purpose: Purpose, symbol: str, now: datetime) -> str:
        self._sequence += 1
        start = self._starts.get((purpose, symbol))
        if start is None:
            base = _BASE_CHARS.sub("", symbol.split("/", 1)[0])[:_BASE_MAX] or "X"
            start = self._starts[purpose, symbol] = f"{OUR_PREFIX}{purpose.value}-{base}-"
        value = f"{start}{base36(ms_from_utc(now))}-{self._run}.{base36(self._sequence)}"
        if not VALID_ID.match(value):
            raise ValueError(f"invalid client order id {value!r}")
        return value
