"""Protection alerts that repeat: the first of a kind is notified at once, its repeats once an
interval with how many came.

A refusal that persists (a symbol's filters refusing every stop of a position, an exchange
refusing its exits) is met again on every keeper tick: one notification every 5 s would bury
the operator's channel in the same line (an outside probe counted 4,149 in 47 s of a paper
daemon at 600×). By (symbol, event): the first goes out, the next after `REPEAT_EVERY` of the
alert's own time (the trading clock) goes out with the count of those held back since.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.record import record, replace

REPEAT_EVERY = timedelta(minutes=10)


@record
class _Told:
    at: datetime
    held_back: int = 0


class AlertRepeats:
    """Which protection alerts to notify, and how a repeat says what it summarizes."""

    def __init__(self, every: timedelta = REPEAT_EVERY) -> None:
        self._every = every
        self._told: dict[tuple[str, str], _Told] = {}

    def to_tell(self, alert: ProtectionAlert) -> ProtectionAlert | None:
        """`alert` as it should be notified, or None to hold it back."""
        key = (alert.symbol, alert.event)
        told = self._told.get(key)
        if told is not None and alert.time - told.at < self._every:
            self._told[key] = replace(told, held_back=told.held_back + 1)
            return None
        self._told[key] = _Told(alert.time)
        if told is None or told.held_back == 0:
            return alert
        since = told.at.isoformat(timespec="seconds")
        more = f" ({told.held_back} more like it since {since}, not sent one by one)"
        return replace(alert, detail=alert.detail + more)
