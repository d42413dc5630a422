"""Our client order ids: unique, readable, within Binance's rule ^[.A-Z:/a-z0-9_-]{1,36}$."""

from __future__ import annotations

import re
from datetime import datetime

from quantum_trader.clock import ms_from_utc

VALID_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(value: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out


class ClientOrderIds:
    """`qt{kind}{symbol}{ms36}{seq}`: kind e entry, x exit, s stop, t take-profit.

    The millisecond time makes ids unique across restarts; the sequence makes them unique
    within one millisecond of (simulated) time.
    """

    def __init__(self, prefix: str = "qt") -> None:
        self._prefix = prefix
        self._sequence = 0

    def next(self, kind: str, symbol: str, now: datetime) -> str:
        self._sequence += 1
        base = symbol.split("/", 1)[0][:10]
        value = (
            f"{self._prefix}-{kind}-{base}-{_base36(ms_from_utc(now))}-{_base36(self._sequence)}"
        )
        assert VALID_ID.match(value), value
        return value
