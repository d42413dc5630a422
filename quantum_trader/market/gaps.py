"""Gaps in a symbol's candles as the indicators see them, and the warm-up after each.

One definition of a gap, shared by training (signals/coverage.py) and the market model
(market/series.py): two consecutive bars whose hours are more than `GAP_MS` apart, that is more
than MAX_MISSING_BARS hourly bars missing between them (validation's tolerance applied to the
strategy's bar, the hour). Shorter holes are tolerated as training tolerates them. Indicators
read bars by position, so across a gap they would take hours days apart for consecutive ones.

After a gap a symbol *warms up* (`Warmup`) until `warmup_h` hourly bars after it have closed:
the history its signal reads (`SignalSource.history_hours`: `history_h` for the ensemble,
three slow-EMA spans for the rule agent), and at least `ATR_PERIOD`, so that its ATR,
restarted after the gap, is defined again. The market model (market/series.py) then shows:

- the price, so that a position held across the gap is valued and managed (its stop, target
  and the keeper's stop maths run on the marks as on any bar);
- no signal (HOLD): nothing enters on it;
- the ATR % and regime of the last hour before the gap: the last values read from contiguous
  bars. The keeper's trailing distance does not read the view's ATR at all (it is the
  position's ATR at entry, SPEC §6), and a held regime shows the keeper no TRENDING → CHOPPY
  turn that only the warm-up made (CHOPPY is what an indicator still warming up says);
- no return z-score (the first return after a gap spans it).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import IntArray
from quantum_trader.log import get_logger
from quantum_trader.market.indicators import ATR_PERIOD
from quantum_trader.market.resample import HOUR_MS
from quantum_trader.market.validation import MAX_MISSING_BARS
from quantum_trader.record import record

log = get_logger("market")

GAP_MS = (MAX_MISSING_BARS + 1) * HOUR_MS
"""Hours of two consecutive bars further apart than this: a gap (more than MAX_MISSING_BARS
hourly bars missing)."""


@record
class Warmup:
    """The warm-up after one gap: the hourly bar opening at `last_ms` is the last before it,
    the one opening at `resume_ms` the first after it; the symbol's slow fields are trusted
    again from `warm_ms` on, once `hours` hourly bars after the first one have closed. When
    the data ends before then, `warm_ms` assumes they go on without another gap."""

    last_ms: int
    resume_ms: int
    warm_ms: int
    hours: int


def _followed_by_gap(time_ms: IntArray) -> npt.NDArray[np.bool_]:
    """For each row k but the last (bars of any timeframe, open times in ms): the hours of
    bars k and k + 1 are more than GAP_MS apart."""
    gap: npt.NDArray[np.bool_] = np.diff(time_ms // HOUR_MS) * HOUR_MS > GAP_MS
    return gap


def gap_rows(time_ms: IntArray) -> IntArray:
    """The rows k followed by a gap (`_followed_by_gap`)."""
    rows: IntArray = np.flatnonzero(_followed_by_gap(time_ms))
    return rows


def gaps_before(time_ms: IntArray) -> IntArray:
    """Row t: how many gaps lie between row 0 and row t (two rows with the same count read
    no gap between them)."""
    counts: IntArray = np.r_[0, np.cumsum(_followed_by_gap(time_ms))]
    return counts


def stretches(time_ms: IntArray) -> list[tuple[int, int]]:
    """The rows [start, stop) of each run of bars between gaps, in order (one when none)."""
    bounds = [0, *(gap_rows(time_ms) + 1).tolist(), int(time_ms.shape[0])]
    return list(itertools.pairwise(bounds))


def warmup_hours(history_hours: int) -> int:
    """Hourly bars after a gap before a symbol's slow fields are trusted: the signal's history,
    and at least the ATR's period."""
    return max(history_hours, ATR_PERIOD)


def warmups(time_ms: IntArray, warmup_h: int) -> tuple[Warmup, ...]:
    """The warm-up after each gap in bars opening at `time_ms` (any timeframe), counted in the
    hours they fill, the one still forming included (a gap is known from the first bar after
    it): hour r is trusted when the `warmup_h` hours before it are all after the gap
    (training's rule, coverage.across_gaps), so from the close of hour `first + warmup_h` on,
    `first` the first one after the gap."""
    if time_ms.size == 0:
        return ()
    hours = time_ms // HOUR_MS
    hourly_ms = hours[np.r_[True, hours[1:] != hours[:-1]]] * HOUR_MS
    last_row = int(hourly_ms.shape[0]) - 1
    found = []
    for k in gap_rows(hourly_ms).tolist():
        trusted = k + 1 + warmup_h
        beyond = max(trusted - last_row, 0)  # hours past the data's last, assumed to come
        warm_ms = int(hourly_ms[min(trusted, last_row)]) + (beyond + 1) * HOUR_MS
        found.append(Warmup(int(hourly_ms[k]), int(hourly_ms[k + 1]), warm_ms, warmup_h))
    return tuple(found)


def warming_rows(
    time_ms: IntArray, timeframe_ms: int, found: tuple[Warmup, ...]
) -> npt.NDArray[np.bool_]:
    """Bars (open times `time_ms`) inside a warm-up of `found`: opened after its gap, closed
    before it ends. A later warm-up ends later, so the latest one begun decides."""
    if not found:
        return np.zeros(time_ms.shape, dtype=bool)
    resume = np.array([w.resume_ms for w in found], dtype=np.int64)
    warm = np.array([w.warm_ms for w in found], dtype=np.int64)
    latest = np.searchsorted(resume, time_ms, side="right") - 1
    inside: npt.NDArray[np.bool_] = (latest >= 0) & (
        time_ms + timeframe_ms < warm[np.maximum(latest, 0)]
    )
    return inside


def span_text(ms: int) -> str:
    """A stretch of time as the notes say it: hours, or days from two days on."""
    hours = ms / HOUR_MS
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def said_warmup(symbol: str, warmup: Warmup) -> str:
    """Log the warm-up after one of `symbol`'s gaps (`gap_warmup`, a warning) and return its
    line: the gap, and when the symbol's signals are used again."""
    start_ms = warmup.last_ms + HOUR_MS
    line = (
        f"{symbol}: its candles miss {span_text(warmup.resume_ms - start_ms)} from "
        f"{_at(start_ms)} to {_at(warmup.resume_ms)}: no entry on its signals until "
        f"{_at(warmup.warm_ms)}, when {warmup.hours} hourly bars after the gap have closed (the "
        "history its signals read); meanwhile its price is shown and a position in it is "
        "managed, with the ATR and regime of the hour before the gap"
    )
    log.warning(
        "gap_warmup",
        symbol=symbol,
        gap_from=utc_from_ms(start_ms).isoformat(),
        gap_to=utc_from_ms(warmup.resume_ms).isoformat(),
        warm_from=utc_from_ms(warmup.warm_ms).isoformat(),
        hours=warmup.hours,
        detail=line,
    )
    return line


def _at(ms: int) -> str:
    return f"{utc_from_ms(ms):%Y-%m-%d %H:%M}"
