"""Repeated warnings, aggregated: the first is logged at once, then while it keeps repeating
one summary line per interval carries the count. At 600× a loop can overrun a thousand times
a minute; the log says so in one line a minute, not a thousand."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from structlog.typing import FilteringBoundLogger


@dataclass(slots=True)
class _Window:
    started_s: float
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)


class RepeatedWarnings:
    """One line for the first occurrence of (event, key), then at most one per `interval_s`.

    Times are seconds of a monotonic clock, passed in. A summary line has the event's name,
    `occurrences` (how many it stands for), `interval_s`, the fields of the last occurrence
    and the totals of the `sums` fields. A key that stays quiet for a whole interval is
    forgotten: its next occurrence is logged at once again.
    """

    def __init__(self, logger: FilteringBoundLogger, interval_s: float) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._windows: dict[tuple[str, Hashable], _Window] = {}

    def warn(
        self,
        event: str,
        key: Hashable,
        now_s: float,
        *,
        sums: Sequence[str] = (),
        level: str = "warning",
        exc_info: BaseException | bool = False,
        **fields: Any,
    ) -> None:
        """Record one occurrence; log it now if it is the first in a while."""
        window = self._windows.get((event, key))
        if window is not None and now_s - window.started_s >= self._interval_s:
            window = self._roll(event, key, window, now_s)
        if window is None:
            self._windows[(event, key)] = _Window(now_s)
            getattr(self._log, level)(event, occurrences=1, exc_info=exc_info, **fields)
            return
        window.count += 1
        window.last = fields
        for name in sums:
            window.sums[name] = window.sums.get(name, 0.0) + float(fields.get(name, 0))

    def flush(self, now_s: float) -> None:
        """Log the summaries of the intervals that have ended (call it now and then)."""
        for (event, key), window in list(self._windows.items()):
            if now_s - window.started_s >= self._interval_s:
                self._roll(event, key, window, now_s)

    def close(self) -> None:
        """Log every pending summary (at shutdown)."""
        for (event, _), window in self._windows.items():
            if window.count:
                self._summarize(event, window)
        self._windows.clear()

    def _roll(self, event: str, key: Hashable, window: _Window, now_s: float) -> _Window | None:
        """End `window`: summarize it; keep counting in a new one only if it was not quiet."""
        del self._windows[(event, key)]
        if not window.count:
            return None
        self._summarize(event, window)
        fresh = _Window(now_s)
        self._windows[(event, key)] = fresh
        return fresh

    def _summarize(self, event: str, window: _Window) -> None:
        totals = {name: _number(value) for name, value in window.sums.items()}
        self._log.warning(
            event,
            **{**window.last, **totals},
            occurrences=window.count,
            interval_s=self._interval_s,
        )


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else round(value, 6)
