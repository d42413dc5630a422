"""What the training data lacks: notes for the training report, and the refusals when it holds
too little to learn and validate anything.

A demanding user trains on market data of their own: a symbol listed late or whose recording
stops early, a symbol without funding rates, a price that does not move, a history shorter than
the `training_days` asked. Each is said in the report (a note), and where nothing could be
learned or validated, `train` stops before publishing anything (MarketDataError, exit 1) with
one line naming the problem and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.market.gaps import gap_rows, gaps_before, span_text
from quantum_trader.market.resample import HOUR_MS
from quantum_trader.record import record
from quantum_trader.signals.features import WARMUP_H, usable_rows
from quantum_trader.signals.settings import EnsembleSettings

MIN_TRAIN_ROWS = 50
"""Rows the first walk-forward block must learn from (the later blocks learn from more)."""
DEFAULT_VALIDATION: float = EnsembleSettings.model_fields["validation_fraction"].default
DAY_MS = 24 * HOUR_MS


def _at(ms: int) -> str:
    return f"{utc_from_ms(ms):%Y-%m-%d %H:%M}"


def history_h(settings: EnsembleSettings, proposer_h: int = 0) -> int:
    """Hours of history a training row needs behind it: the features' and the forecasters'
    window and, under meta-labeling (`side_source = "rules"`), the `proposer_h` of the rule
    agent that proposes the side, when longer."""
    proposer = proposer_h if settings.side_source == "rules" else 0
    return max(WARMUP_H, settings.lookback_bars, proposer)


def ended_early(
    hourly: Mapping[str, Bars], end_ms: int, resumes: Mapping[str, int | None] | None = None
) -> list[str]:
    """A note for each symbol whose hourly bars stop before another's: the window ends there.
    `resumes` is where a symbol's bars go on after training_end cut them (a gap, not an end)."""
    latest = max(int(b.time_ms[-1]) for b in hourly.values())
    if latest - end_ms < HOUR_MS:
        return []
    return [
        _ended(symbol, end_ms, latest, (resumes or {}).get(symbol))
        for symbol, bars in hourly.items()
        if int(bars.time_ms[-1]) == end_ms
    ]


def _ended(symbol: str, end_ms: int, latest: int, resume_ms: int | None) -> str:
    if resume_ms is None:
        return (
            f"{symbol}'s hourly bars end at {_at(end_ms)}: training ends there for every "
            f"symbol, though other symbols' go on to {_at(latest)}; bring {symbol}'s data up "
            "to date or leave it out of market.symbols"
        )
    start = end_ms + HOUR_MS
    return (
        f"{symbol}'s candles miss {span_text(resume_ms - start)} from {_at(start)} to "
        f"{_at(resume_ms)}, a gap ensemble.training_end falls in (a walk-forward: the block's "
        f"start): training ends at {_at(end_ms)} for every symbol, though other symbols' go on "
        f"to {_at(latest)}; move training_end past the gap (a walk-forward: --start or "
        f"--block-days, so that no block begins in it), or leave {symbol} out of market.symbols"
    )


def no_funding(symbol: str) -> str:
    """The note for a symbol whose funding rates are not recorded."""
    return (
        f"{symbol}: no funding rates recorded: its labels are charged no funding and its "
        "funding feature reads 0 (download-data fetches them)"
    )


def no_hour(symbol: str) -> str:
    """Why a symbol whose candles do not fill one closed hour gave no training row."""
    return f"{symbol}: its candles do not fill one closed hourly bar"


def unusable(
    symbol: str,
    bars: Bars,
    features: FloatArray,
    window: tuple[int, int],
    settings: EnsembleSettings,
    history: int,
) -> str:
    """Why a symbol gave no training row; `history` is `history_h`'s."""
    needed = history + settings.forecast_horizon_h + 1
    if len(bars) < needed:
        return (
            f"{symbol}: {len(bars)} hourly bars, fewer than the {needed} a row needs "
            f"({history} h of history before it, "
            f"{settings.forecast_horizon_h} h after it)"
        )
    if not usable_rows(features).any():
        return (
            f"{symbol}: its features are never defined: its prices or volume do not move "
            "(a constant close has an ATR of 0 and no returns)"
        )
    return (
        f"{symbol}: no hour from {_at(window[0])} to {_at(window[1])} has every feature "
        "defined (prices or volume that do not move there?)"
    )


def shorter_than_asked(
    first_row_ms: int,
    window: tuple[int, int],
    data_start_ms: int,
    settings: EnsembleSettings,
    history: int,
) -> str | None:
    """A note when the labelled rows cover less than `training_days` (the data is shorter);
    `history` is `history_h`'s."""
    if first_row_ms - window[0] < DAY_MS:
        return None
    covered = (window[1] - first_row_ms) / DAY_MS
    return (
        f"the labelled rows cover {covered:.1f} of the {settings.training_days} days of "
        f"ensemble.training_days (from {_at(first_row_ms)}): the data begins at "
        f"{_at(data_start_ms)} and a row needs {history} h of history before it; "
        "import a longer history to train on the whole window"
    )


@record
class Blamed:
    """The settings that make the blocks starve (what to change, with their values), and
    whether more data or fewer blocks would help too."""

    fixes: tuple[str, ...] = ()
    data_helps: bool = True


def small_validation(hours: int, settings: EnsembleSettings) -> Blamed:
    """When the blocks hold no hour: a `validation_fraction` below the default is named."""
    fraction = settings.validation_fraction
    if fraction >= DEFAULT_VALIDATION:
        return Blamed()
    return Blamed(
        (
            f"raise ensemble.validation_fraction ({fraction:g}: {fraction:g} of {hours} hours "
            f"is under one hour a block)",
        )
    )


def first_block_starved(before: int, unembargoed: int, settings: EnsembleSettings) -> Blamed:
    """When the first block learns from too few rows: `before` rows precede it, `unembargoed`
    of them have trades that ended before it (the rows it would learn from without the
    embargo). The embargo alone, or a `validation_fraction` above the default, is named."""
    embargo, fraction = settings.embargo_h, settings.validation_fraction
    if unembargoed >= MIN_TRAIN_ROWS:
        return Blamed(
            (
                f"lower ensemble.embargo_h ({embargo}: a block learns only from rows whose "
                f"trades ended {embargo} h before it; without it the first would learn from "
                f"{unembargoed})",
            ),
            data_helps=False,
        )
    if fraction <= DEFAULT_VALIDATION:
        return Blamed()
    return Blamed(
        (
            f"lower ensemble.validation_fraction ({fraction:g}: the blocks take the last "
            f"{fraction:.1%} of the hours, leaving {before} rows before the first)",
        )
    )


def too_little(
    time_ms: npt.NDArray[np.int64],
    window: tuple[int, int],
    data_start_ms: int,
    settings: EnsembleSettings,
    why: str,
    history: int,
    blamed: Blamed | None = None,
) -> str:
    """The refusal when the panel cannot be cut into walk-forward blocks that learn.

    `window` is the training window asked for (ms); `data_start_ms` the first recorded bar: when
    the data begins inside the window, more history is what helps, else a longer window.
    `history` is `history_h`'s; `blamed` the settings to name first (small_validation,
    first_block_starved).
    """
    blamed = blamed or Blamed()
    span = (
        f"{time_ms.shape[0]} labelled (symbol, hour) rows from {_at(int(time_ms.min()))} to "
        f"{_at(int(time_ms.max()))} UTC"
        if time_ms.size
        else "no labelled (symbol, hour) row"
    )
    if data_start_ms + history * HOUR_MS > window[0]:
        more = f"import a longer history (the data begins at {_at(data_start_ms)})"
    else:
        more = f"raise ensemble.training_days ({settings.training_days})"
    fixes = list(blamed.fixes)
    if blamed.data_helps:
        fixes += [more, f"lower ensemble.walk_forward_folds ({settings.walk_forward_folds})"]
    either = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])} or {fixes[-1]}"
    return (
        f"too little data to train and validate: {span}: {why}; a row needs "
        f"{history} h of history before it and its trades' outcomes after it; "
        f"{either}; nothing was published"
    )


def across_gaps(
    bars: Bars, rows: IntArray, ends_ms: npt.NDArray[np.int64], history: int
) -> npt.NDArray[np.bool_]:
    """The rows whose features (the `history` bars before them) or labels (the bars up to the
    one ending at `ends_ms`) would read across a gap (market/gaps.py, the replay's warm-up
    rule too): both read bars by position, so hours days apart would be taken for consecutive
    ones (a trade held through days nothing was recorded, exited at the first bar after them)."""
    counts = gaps_before(bars.time_ms)
    first = np.maximum(rows - history, 0)
    last = np.clip(np.searchsorted(bars.time_ms, ends_ms - HOUR_MS), 0, len(bars) - 1)
    return np.asarray(counts[last] != counts[first])


def gaps_left_out(bars: Bars, rows: IntArray, history: int, left_out: int) -> str | None:
    """The note of a symbol whose rows next to gaps were left out (`across_gaps`), naming the
    largest gap among those the training rows' windows reached; None when none was."""
    steps = np.diff(bars.time_ms)
    first = int(max(int(rows.min()) - history, 0)) if rows.size else 0
    big = [k for k in gap_rows(bars.time_ms).tolist() if k >= first]
    if not big or left_out == 0:
        return None
    k = max(big, key=lambda i: int(steps[i]))
    start, end = int(bars.time_ms[k]) + HOUR_MS, int(bars.time_ms[k + 1])
    span = span_text(end - start)
    more = f" (the largest of {len(big)} gaps)" if len(big) > 1 else ""
    return (
        f"{bars.symbol}: its candles miss {span} from {_at(start)} to {_at(end)}{more}: the "
        f"{left_out} hours whose features or labels would read across a gap as if nothing were "
        "missing are left out of training"
    )
