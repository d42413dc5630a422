"""Candle validation, run on every load: recorded files, imports, downloads and the live feed.

Each defect has one policy (docs/BAD_INPUTS.md, "Market data"):

- refuse (MarketDataError naming the source and the row): no rows; a non-finite value; a
  non-positive price or negative volume; high below max(open, close) or low above
  min(open, close); timestamps outside 2010–2100 in epoch milliseconds (seconds, microseconds
  or nanoseconds), not strictly increasing or off the bar grid; rows mostly more than one bar
  apart (a longer timeframe's candles under this one's name); a change of price
  scale that does not come back (prices ×10 or more for longer than `MAX_SPIKE_BARS` bars);
- repair, with the reason returned for the caller to log: a spike — a bar, or a run of at most
  `MAX_SPIKE_BARS` bars, out of line with the rest — is removed. The hole it leaves is a gap;
- mark untradeable: gaps are kept and reported. A symbol whose newest closed bar is more than
  `MAX_MISSING_BARS` bars old has no price, no signal and no market fill (market.model,
  execution.paper_markets) until its data resumes.

Funding rates (`check_funding`) are refused when a time is no epoch millisecond of 2010–2100,
the times do not increase, or a rate is not a number or beyond `MAX_FUNDING_RATE`.

The spike band, in natural-log price units, is max(`SPIKE_SIGMAS` × σ, floor), σ being 1.4826 ×
the median absolute close-to-close log return of the `SPIKE_WINDOW_BARS` bars before (a robust
standard deviation). The floors: ln 10 for a level shift of the closes, ln 100 for a bar's high
or low against the previous close. They are far from real crashes: across the team's recorded
Binance data (19 perpetuals at 5 m and 1 h, 16 at 1 m, 37 spot pairs, 2024-09 → 2026-02) the
largest close move that reverted was ×2.5 (PIPPIN, 5 m, 2025-10-10), the largest that stayed
×4.1 (OM −76 %, 2025-04-13), and the deepest wick ×26 against the previous close (BIO's
listing hour); decimal-shift errors are ×10 and more. σ only widens the band for markets so
volatile that 200 robust deviations exceed the floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import overload

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import FloatArray, IntArray
from quantum_trader.errors import MarketDataError
from quantum_trader.record import record

BoolArray = npt.NDArray[np.bool_]

PRICE_COLUMNS = ("open", "high", "low", "close")
SPIKE_SIGMAS = 200.0
SPIKE_WINDOW_BARS = 288
LEVEL_FLOOR = math.log(10.0)
RANGE_FLOOR = math.log(100.0)
MAX_SPIKE_BARS = 12
MAX_MISSING_BARS = 1
_MAD_TO_SIGMA = 1.4826
# Open times must be epoch milliseconds of this range: seconds, microseconds or nanoseconds
# fall outside it by three orders of magnitude and more.
EARLIEST_MS = 1_262_304_000_000  # 2010-01-01
LATEST_MS = 4_102_444_800_000  # 2100-01-01
# Most consecutive rows of a file are one bar apart (gaps are rare in recorded data): rows
# mostly further apart are candles of a longer timeframe under this one's name.
MIN_STEPS_FOR_SPACING = 3
# Binance caps each USD-M perpetual's funding rate per interval (GET /fapi/v1/fundingInfo,
# `adjustedFundingRateCap` / `adjustedFundingRateFloor`: ±0.3 % to ±3 % an interval); the
# team's recorded files (20 perpetuals, 2025–2026) reach ±2 %. A rate beyond ±10 % an interval
# is none Binance can set: a percentage written as a fraction, another column, a corrupt file.
MAX_FUNDING_RATE = 0.1
_FUNDING_ADVICE = (
    "download the funding rates again (download-data), or remove the file (no funding is "
    "then charged)"
)


@record
class Gap:
    """Missing bars between the bar opening at `last_ms` and the one opening at `resume_ms`."""

    last_ms: int
    resume_ms: int
    missing_bars: int


@record
class Repair:
    """Bars removed, by their open times (ms), and why."""

    times_ms: tuple[int, ...]
    reason: str


@record
class CandleReport:
    rows: int
    repairs: tuple[Repair, ...]
    gaps: tuple[Gap, ...]

    @property
    def untradeable_gaps(self) -> tuple[Gap, ...]:
        """Gaps across which the symbol cannot be traded (more than MAX_MISSING_BARS)."""
        return tuple(g for g in self.gaps if g.missing_bars > MAX_MISSING_BARS)


Columns = Mapping[str, FloatArray]


@record
class Advice:
    """What a refusal tells the user to do, by defect: a bad value in a row, times out of
    order, times off the bar grid."""

    row: str
    order: str
    grid: str


FILE_ADVICE = Advice(
    row="correct or remove that row, or download the data again",
    order="sort the rows by time and drop repeated ones, or download the data again",
    grid="times must be the bars' open times (not their close times), or download the data again",
)
_REFETCHED = "the answer is not used: the symbol sits this cycle out and its bars are fetched again"
EXCHANGE_ADVICE = Advice(row=_REFETCHED, order=_REFETCHED, grid=_REFETCHED)


def check_candles(
    label: str,
    time_ms: IntArray,
    columns: Columns,
    timeframe_ms: int,
    advice: Advice = FILE_ADVICE,
) -> tuple[IntArray, dict[str, FloatArray], CandleReport]:
    """Validate one symbol's OHLCV; return the repaired arrays and what was done.

    `columns` holds open, high, low, close and volume. Raises MarketDataError naming `label`
    and the row for a defect that is refused (see the module docstring).
    """
    if time_ms.size == 0:
        raise MarketDataError(f"{label}: no candles (zero rows); download or import the data again")
    _check_values(label, columns, advice)
    _check_ohlc(label, time_ms, columns, advice)
    _check_times(label, time_ms, timeframe_ms, advice)
    keep, repairs = _spikes(label, time_ms, columns)
    if not keep.all():
        time_ms = time_ms[keep]
        columns = {name: values[keep] for name, values in columns.items()}
    report = CandleReport(int(time_ms.size), repairs, find_gaps(time_ms, timeframe_ms))
    return time_ms, dict(columns), report


@overload
def is_stale(last_close_ms: int, now_ms: int, timeframe_ms: int) -> bool: ...
@overload
def is_stale(last_close_ms: IntArray, now_ms: IntArray, timeframe_ms: int) -> BoolArray: ...
def is_stale(
    last_close_ms: int | IntArray, now_ms: int | IntArray, timeframe_ms: int
) -> bool | BoolArray:
    """True when more than MAX_MISSING_BARS bars that should have closed by `now_ms` are
    missing after the bar that closed at `last_close_ms`: the symbol is untradeable. Element
    by element for arrays of instants."""
    missing = (now_ms // timeframe_ms * timeframe_ms - last_close_ms) // timeframe_ms
    return missing > MAX_MISSING_BARS


def find_gaps(time_ms: IntArray, timeframe_ms: int) -> tuple[Gap, ...]:
    steps = np.diff(time_ms)
    where = np.flatnonzero(steps > timeframe_ms)
    return tuple(
        Gap(int(time_ms[i]), int(time_ms[i + 1]), int(steps[i] // timeframe_ms) - 1) for i in where
    )


def gaps_within(
    time_ms: IntArray, timeframe_ms: int, start_ms: int, end_ms: int
) -> tuple[int, Gap | None]:
    """The gaps of more than MAX_MISSING_BARS bars (untradeable) with missing bars inside
    [`start_ms`, `end_ms`): how many, and the largest. Vectorised over the window's rows
    (≈ 0.05 ms for a year of 5 m bars; docs/BENCHMARKS.md, Components)."""
    low = max(int(np.searchsorted(time_ms, start_ms, side="right")) - 1, 0)
    high = int(np.searchsorted(time_ms, end_ms, side="left")) + 1
    times = time_ms[low:high]  # from the last bar opening by the start, to the first at the end
    steps = np.diff(times)
    rows = np.flatnonzero(steps > (MAX_MISSING_BARS + 1) * timeframe_ms)
    rows = rows[times[rows] + timeframe_ms < end_ms]  # its first missing bar before the end
    if not rows.size:
        return 0, None
    row = int(rows[np.argmax(steps[rows])])
    missing = int(steps[row] // timeframe_ms) - 1
    return int(rows.size), Gap(int(times[row]), int(times[row + 1]), missing)


def _check_values(label: str, columns: Columns, advice: Advice) -> None:
    for name, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise MarketDataError(
                f"{label}: {name} is not a number at row {int(bad[0])}; {advice.row}"
            )
    for name in PRICE_COLUMNS:
        bad = np.flatnonzero(columns[name] <= 0)
        if bad.size:
            raise MarketDataError(
                f"{label}: non-positive {name} at row {int(bad[0])}; {advice.row}"
            )
    bad = np.flatnonzero(columns["volume"] < 0)
    if bad.size:
        raise MarketDataError(f"{label}: negative volume at row {int(bad[0])}; {advice.row}")


def _check_ohlc(label: str, time_ms: IntArray, columns: Columns, advice: Advice) -> None:
    o, h, lo, c = (columns[name] for name in PRICE_COLUMNS)
    bad = np.flatnonzero((h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo))
    if bad.size:
        row = int(bad[0])
        raise MarketDataError(
            f"{label}: inconsistent candle at row {row} ({_iso(int(time_ms[row]))}): "
            f"open {o[row]}, high {h[row]}, low {lo[row]}, close {c[row]} "
            f"(high must be >= open, close and low; low <= open and close); {advice.row}"
        )


def check_epoch_ms(label: str, time_ms: IntArray) -> None:
    """Refuse times that are not epoch milliseconds of 2010–2100, naming what they read as."""
    outside = np.flatnonzero((time_ms < EARLIEST_MS) | (time_ms >= LATEST_MS))
    if outside.size:
        row = int(outside[0])
        raise MarketDataError(
            f"{label}: timestamp {int(time_ms[row])} at row {row} is not an instant between "
            f"2010 and 2100 in milliseconds{_unit_hint(int(time_ms[row]))}; convert the times "
            "to epoch milliseconds, or download the data again"
        )


def check_funding(label: str, time_ms: IntArray, rates: FloatArray) -> None:
    """Refuse funding settlements Binance cannot have made (see the module docstring);
    MarketDataError naming `label`, the row, its time and the value, and what to do."""
    check_epoch_ms(label, time_ms)
    bad = np.flatnonzero(~np.isfinite(rates))
    if bad.size:
        row = int(bad[0])
        raise MarketDataError(
            f"{label}: funding rate {rates[row]} at row {row} ({_iso(int(time_ms[row]))}) is "
            f"not a finite number; {_FUNDING_ADVICE}"
        )
    bad = np.flatnonzero(np.abs(rates) > MAX_FUNDING_RATE)
    if bad.size:
        row = int(bad[0])
        raise MarketDataError(
            f"{label}: funding rate {rates[row]:g} at row {row} ({_iso(int(time_ms[row]))}) "
            f"is beyond ±{MAX_FUNDING_RATE:.0%} an interval, which no Binance cap allows "
            "(±3% at most): rates are fractions (0.0001 for 0.01%); correct the file, "
            + _FUNDING_ADVICE
        )
    bad = np.flatnonzero(np.diff(time_ms) <= 0)
    if bad.size:
        raise MarketDataError(
            f"{label}: funding times not strictly increasing at row {int(bad[0]) + 1}; "
            + _FUNDING_ADVICE
        )


def _check_times(label: str, time_ms: IntArray, timeframe_ms: int, advice: Advice) -> None:
    check_epoch_ms(label, time_ms)
    steps = np.diff(time_ms)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        raise MarketDataError(
            f"{label}: timestamps not strictly increasing at row {int(bad[0]) + 1}; " + advice.order
        )
    off_grid = np.flatnonzero(time_ms % timeframe_ms)
    if off_grid.size:
        row = int(off_grid[0])
        moment = utc_from_ms(int(time_ms[row]))
        raise MarketDataError(
            f"{label}: timestamp {moment:%Y-%m-%d %H:%M:%S} at row {row} is off the "
            f"{_span(timeframe_ms)} bar grid; {advice.grid}"
        )
    if (
        steps.size >= MIN_STEPS_FOR_SPACING
        and np.count_nonzero(steps == timeframe_ms) * 2 < steps.size
    ):
        usual = int(np.median(steps))
        raise MarketDataError(
            f"{label}: most rows are {_span(usual)} apart, not {_span(timeframe_ms)}: "
            f"{_span(usual)} candles under a {_span(timeframe_ms)} name? Import them under "
            "their own timeframe (the file name's), or download the data again"
        )


def _band(abs_returns: FloatArray, index: int, floor: float) -> float:
    """max(SPIKE_SIGMAS × robust σ of the returns before `index`, floor)."""
    window = abs_returns[max(0, index - SPIKE_WINDOW_BARS) : index]
    if window.size < 10:
        window = abs_returns
    sigma = _MAD_TO_SIGMA * float(np.median(window)) if window.size else 0.0
    return max(SPIKE_SIGMAS * sigma, floor)


def _spikes(
    label: str, time_ms: IntArray, columns: Columns
) -> tuple[npt.NDArray[np.bool_], tuple[Repair, ...]]:
    """Rows to keep and the repairs made: level outliers first, then, on the rows left,
    bars whose high or low is out of the band against the previous kept close."""
    log_close = np.log(columns["close"])
    keep = np.ones(time_ms.size, dtype=bool)
    repairs: list[Repair] = []
    level = _level_outliers(label, time_ms, log_close)
    if level.size:
        keep[level] = False
        repairs.append(Repair(_times(time_ms, level), "closes ×10 or more off the series"))
    rows = np.flatnonzero(keep)
    kept = {name: columns[name][rows] for name in ("high", "low", "close")}
    ranged = rows[_range_outliers(kept)]
    if ranged.size:
        keep[ranged] = False
        repairs.append(Repair(_times(time_ms, ranged), "high or low ×100 or more off the close"))
    return keep, tuple(repairs)


def _level_outliers(label: str, time_ms: IntArray, log_close: FloatArray) -> IntArray:
    """Rows of short runs of closes at another price level than the longest run."""
    abs_returns = np.abs(np.diff(log_close))
    candidates = np.flatnonzero(abs_returns > LEVEL_FLOOR)
    jumps = [int(i) for i in candidates if abs_returns[i] > _band(abs_returns, int(i), LEVEL_FLOOR)]
    if not jumps:
        return np.empty(0, dtype=np.int64)
    bounds = [0, *(i + 1 for i in jumps), int(log_close.size)]
    runs = [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
    longest = max(runs, key=lambda run: run[1] - run[0])
    reference = float(np.median(log_close[longest[0] : longest[1]]))
    outliers: list[int] = []
    for start, stop in runs:
        if abs(float(np.median(log_close[start:stop])) - reference) <= LEVEL_FLOOR:
            continue
        if stop - start > MAX_SPIKE_BARS:
            raise MarketDataError(
                f"{label}: prices change scale at row {start} ({_iso(int(time_ms[start]))}) "
                f"for {stop - start} bars: mixed price units; re-download or re-import the file"
            )
        outliers.extend(range(start, stop))
    return np.asarray(outliers, dtype=np.int64)


def _range_outliers(kept: Columns) -> npt.NDArray[np.bool_]:
    """Bars whose high or low is beyond the band against the previous close."""
    close = kept["close"]
    abs_returns = np.abs(np.diff(np.log(close)))
    reference = np.concatenate((close[:1], close[:-1]))
    reach = np.maximum(np.log(kept["high"] / reference), np.log(reference / kept["low"]))
    flagged = np.zeros(close.size, dtype=bool)
    for row in np.flatnonzero(reach > RANGE_FLOOR):
        flagged[row] = reach[row] > _band(abs_returns, max(int(row) - 1, 0), RANGE_FLOOR)
    return flagged


def _unit_hint(value: int) -> str:
    """What `value` reads as when it is an epoch time in another unit of 2010–2100."""
    for unit, per_ms in (("seconds", 1e-3), ("microseconds", 1e3), ("nanoseconds", 1e6)):
        if EARLIEST_MS * per_ms <= value < LATEST_MS * per_ms:
            return f" (it reads as epoch {unit})"
    return ""


def _span(ms: int) -> str:
    """A duration as the timeframes are written (5m, 1h, 1d), else in seconds."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms / 1000:g}s"


def _times(time_ms: IntArray, rows: IntArray) -> tuple[int, ...]:
    return tuple(int(t) for t in time_ms[rows])


def _iso(time_ms: int) -> str:
    return utc_from_ms(time_ms).strftime("%Y-%m-%d %H:%M")
