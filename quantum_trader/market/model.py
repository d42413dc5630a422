"""The market model: everything about the market that does not depend on the account, per bar.

ATR % and regimes are computed on closed hourly bars (the strategy's timeframe: 5 m ATR puts
stops inside the noise) and forward-filled onto the execution bars, which carry prices,
returns and the signals' alignment.

It is computed vectorized in one pass (ATR %, returns, regimes, signals) and read at any instant
with `state_at`. A gap in a symbol's candles is folded into its columns then (market/series.py,
market/gaps.py): no indicator reads across it, and until the data after it covers the history
its signals read, the symbol shows a HOLD signal and the ATR and regime of before the gap, its
price still shown. The daemon computes it each cycle over its trailing window and reads the newest
row; the backtest computes it once over the whole range and reads row after row. Both read the
same way, so both run the same decisions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import (
    Bars,
    FloatArray,
    GlobalRegime,
    IntArray,
    MarketRules,
    MarketView,
    Regime,
    Signal,
)
from quantum_trader.domain.correlation import (
    CorrelationMatrix,
    correlation_matrix,
    returns_window,
)
from quantum_trader.market.correlations_ahead import CorrelationsAhead, Rows
from quantum_trader.market.correlations_aside import CorrelationJob, Matrices
from quantum_trader.market.gaps import Warmup, warmup_hours
from quantum_trader.market.per_symbol import PerSymbol
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.run_signals import RunSignals
from quantum_trader.market.series import (
    RegimeFn,
    StatisticsWindows,
    SymbolSeries,
    close_price,
    constant_regime,
    grid_origin,
    last_closed_row,
    quiet_runs,
    signal_runs,
    slow_runs,
    symbol_series,
    with_funding,
)
from quantum_trader.market.validation import is_stale
from quantum_trader.ports import SignalSource
from quantum_trader.record import record

FundingFn = Callable[[str, int], float]
GlobalRegimeFn = Callable[[int], GlobalRegime]


@record
class MarketState:
    """The market view at one instant and the signals of its newest closed bars."""

    view: MarketView
    signals: list[Signal]


def _rows_key(rows: Sequence[tuple[str, SymbolSeries, int]]) -> Rows:
    return tuple((symbol, last) for symbol, _, last in rows)


_SlowFields = tuple[dict[str, float], dict[str, Regime], dict[str, float], list[Signal]]


class _HeldSlow(NamedTuple):
    """The last slow fields built, their key (each row's run), and the instants
    [since, until) they are held for without a look at the rows."""

    key: tuple[tuple[str, int], ...]
    fields: _SlowFields
    since: int
    until: int


class MarketModel:
    def __init__(
        self,
        series: Mapping[str, SymbolSeries],
        rules: Mapping[str, MarketRules],
        source_name: str,
        funding_rate_8h: FundingFn,
        global_regime: GlobalRegimeFn,
        windows: StatisticsWindows,
    ) -> None:
        self._series = dict(series)
        self._rules = rules
        self._funding = funding_rate_8h
        self._global_regime = global_regime
        self._windows = windows
        self._correlations: tuple[int, CorrelationMatrix] | None = None
        self._origins = {symbol: grid_origin(s.bars) for symbol, s in self._series.items()}
        self._last_rows = {symbol: len(s.bars) - 1 for symbol, s in self._series.items()}
        # What `_visible_rows` reads of each symbol, gathered once.
        self._grids = tuple(
            (symbol, s, self._origins[symbol], self._last_rows[symbol])
            for symbol, s in self._series.items()
        )
        self._runs = {symbol: signal_runs(s.signals) for symbol, s in self._series.items()}
        self._signals = RunSignals(source_name)
        self._slow_runs = {
            symbol: slow_runs(s, self._runs[symbol]) for symbol, s in self._series.items()
        }
        self._slow: _HeldSlow | None = None
        self._funding_recorded = all(s.funding_8h is not None for s in self._series.values())
        self._quiet: tuple[int, int, tuple[tuple[str, int], ...]] | None = None
        self._rows: tuple[int, tuple[tuple[str, SymbolSeries, int], ...]] | None = None
        self._state: tuple[int, MarketState] | None = None  # the last instant's (`state_at`)
        self._ahead: CorrelationsAhead | None = None  # `look_ahead`

    @functools.cached_property
    def _quiet_runs(self) -> dict[str, npt.NDArray[np.intp]]:
        """`quiet_runs` of each symbol; built on the first `quiet_key` (only a backtest asks)."""
        return {
            symbol: quiet_runs(s, self._slow_runs[symbol]) for symbol, s in self._series.items()
        }

    @functools.cached_property
    def _quiet_leaves(self) -> dict[str, npt.NDArray[np.intp]]:
        """Row t: the row that starts the next run of `quiet_runs` after row t's, or the last
        row when none does, by symbol (one lookup where a search per symbol cost ≈ 2 µs)."""
        leaves = {}
        for symbol, runs in self._quiet_runs.items():
            rows = np.arange(len(runs))
            starts = np.append(np.flatnonzero(runs == rows), len(runs) - 1)
            leaves[symbol] = starts[np.searchsorted(starts[:-1], rows, side="right")]
        return leaves

    @classmethod
    def compute(
        cls,
        bars: Mapping[str, Bars],
        source: SignalSource,
        rules: Mapping[str, MarketRules],
        *,
        tail: int | None,
        regime: RegimeFn = constant_regime,
        funding_rate_8h: FundingFn = lambda symbol, now_ms: 0.0,
        global_regime: GlobalRegimeFn = lambda now_ms: GlobalRegime.SIDEWAYS,
        windows: StatisticsWindows | None = None,
        funding_series: Mapping[str, FundingSeries] | None = None,
    ) -> MarketModel:
        """`funding_series` (recorded rates) is aligned to the bars once; without it the
        `funding_rate_8h` function is asked at each instant."""
        spans = windows or StatisticsWindows()
        signals = source.evaluate(bars, tail=tail)
        warmup_h = warmup_hours(source.history_hours)
        series = {
            symbol: with_funding(
                symbol_series(b, signals[symbol], regime, spans, warmup_h),
                (funding_series or {}).get(symbol),
            )
            for symbol, b in bars.items()
            if len(b) and symbol in signals
        }
        return cls(series, rules, source.name, funding_rate_8h, global_regime, spans)

    def state_at(self, now_ms: int) -> MarketState:
        """The view as of `now_ms`: only bars closed by then are visible; a symbol more than
        one bar behind (a gap in its data) is left out of the view and the signals. After a
        gap, while it warms up, it is shown with a HOLD signal (market/gaps.py).

        What changes hourly (ATR, regime, z-score, signal) is built once per run of equal rows
        and shared by the views of that run; funding is read at every instant, prices and
        returns when first read (`PerSymbol`). The last instant's state is kept: a backtest
        step whose checks read the view and then runs its cycle asks twice (≈ 3,300 times a
        year)."""
        held = self._state
        if held is not None and held[0] == now_ms:
            return held[1]
        funding: dict[str, float] = {}
        rows = self._rows_at(now_ms)
        shown = {symbol: (s, last) for symbol, s, last in rows}
        returns = PerSymbol(shown, self._returns)
        for symbol, s, last in rows:
            funding[symbol] = (
                s.funding_8h.item(last)
                if s.funding_8h is not None
                else self._funding(symbol, now_ms)
            )
        atr_pct, regimes, zscores, signals = self._slow_fields(now_ms, rows)
        # By position, in the fields' order (time, prices, rules, atr_pct, regimes,
        # global_regime, returns, funding_rate_8h, return_zscore, correlations): keywords
        # build a dict at every step.
        view = MarketView(
            utc_from_ms(now_ms),
            PerSymbol(shown, close_price),
            self._rules,
            atr_pct,
            regimes,
            self._global_regime(now_ms),
            returns,
            funding,
            zscores,
            self._correlations_at(now_ms, returns, rows),
        )
        state = MarketState(view, signals)
        self._state = (now_ms, state)
        return state

    def warming_up(self, now_ms: int) -> list[tuple[str, Warmup]]:
        """Each symbol in a warm-up after a gap at `now_ms` (market/gaps.py), with it."""
        return [
            (symbol, warmup)
            for symbol, s in self._series.items()
            for warmup in s.warmups
            if warmup.resume_ms <= now_ms < warmup.warm_ms
        ]

    def prices_at(self, now_ms: int, symbols: Iterable[str]) -> dict[str, Decimal]:
        """The prices of `symbols` that `state_at(now_ms).view.prices` shows, without the rest
        of the view (a backtest's stretch asks for the symbols held: a price costs ≈ 6,500
        instructions, a few of the eight are held)."""
        held = self._state
        if held is not None and held[0] == now_ms:
            prices = held[1].view.prices
            return {symbol: prices[symbol] for symbol in symbols if symbol in prices}
        shown = {}
        for symbol in symbols:
            s = self._series.get(symbol)
            if s is not None and (row := self._visible_row(symbol, s, now_ms)) >= 0:
                shown[symbol] = close_price(s, row)
        return shown

    def look_ahead(self, periods: int) -> None:
        """Compute the correlation matrices of `periods` refresh periods at a time, the
        first one needed and those after it (correlations_ahead.py): for a model over a
        recording, whose rows ahead exist."""
        windows = self._windows
        self._ahead = CorrelationsAhead(
            periods, windows.correlation_refresh_ms, windows.returns_bars, self._returns_at
        )

    def _returns(self, s: SymbolSeries, last: int) -> FloatArray:
        return returns_window(s.returns, last, self._windows.returns_bars)

    def correlation_job(self, start_ms: int, end_ms: int) -> CorrelationJob:
        """The correlation matrices of the refresh periods from `start_ms` to `end_ms` as a
        job for a correlation process (correlations_aside.py): the rows each period's start
        shows, and the returns."""
        refresh = self._windows.correlation_refresh_ms
        periods = range(start_ms // refresh, end_ms // refresh + 1)
        starts = np.arange(periods.start, periods.stop, dtype=np.int64) * refresh
        shown = [(symbol, rows.tolist()) for symbol, rows in self._visible_rows_at(starts).items()]
        rows = tuple(
            tuple((symbol, column[i]) for symbol, column in shown if column[i] >= 0)
            for i in range(len(periods))
        )
        returns = {symbol: s.returns for symbol, s in self._series.items()}
        return CorrelationJob(periods.start, rows, returns, self._windows.returns_bars)

    def correlations_from(self, computed: Callable[[], Matrices | None]) -> None:
        """Take each period's matrix from `computed` once it answers (a correlation
        process's), where it was computed from the rows asked; only with `look_ahead`."""
        if self._ahead is not None:
            self._ahead.computed = computed

    def _returns_at(self, now_ms: int) -> tuple[Rows, dict[str, FloatArray]]:
        """The rows the view at `now_ms` would show and their returns (the model's memory of
        the last instant left as it is)."""
        rows = self._visible_rows(now_ms)
        return _rows_key(rows), {symbol: self._returns(s, last) for symbol, s, last in rows}

    def _rows_at(self, now_ms: int) -> tuple[tuple[str, SymbolSeries, int], ...]:
        """Each symbol the view at `now_ms` shows, with its row. The last instant's answer is
        kept: a backtest step asks for the view and its quiet key at the same instant."""
        if self._rows is not None and self._rows[0] == now_ms:
            return self._rows[1]
        rows = self._visible_rows(now_ms)
        self._rows = (now_ms, rows)
        return rows

    def _visible_rows(self, now_ms: int) -> tuple[tuple[str, SymbolSeries, int], ...]:
        """`_visible_row` of each symbol shown at `now_ms`, with its series (asked for every
        step's view and at each hour's quiet key: each symbol's inputs gathered once)."""
        rows = []
        for symbol, s, origin, last_row in self._grids:  # a loop, not generators
            row = _shown_row(s, origin, last_row, now_ms)
            if row >= 0:
                rows.append((symbol, s, row))
        return tuple(rows)

    def _visible_row(self, symbol: str, s: SymbolSeries, now_ms: int) -> int:
        """The row of `symbol` the view at `now_ms` shows, or -1 when it leaves it out."""
        return _shown_row(s, self._origins[symbol], self._last_rows[symbol], now_ms)

    def _visible_rows_at(self, times_ms: IntArray) -> dict[str, IntArray]:
        """`_visible_row` of each symbol at each of `times_ms`, all at once (-1: left out):
        a year's correlation job asks for 8,760 instants (≈ 0.07 s one by one)."""
        shown = {}
        for symbol, s in self._series.items():
            bars, origin, last_row = s.bars, self._origins[symbol], self._last_rows[symbol]
            step = bars.timeframe_ms
            if origin is None:
                last = np.searchsorted(bars.time_ms, times_ms - step, side="right") - 1
            else:
                last = np.clip((times_ms - origin) // step - 1, -1, last_row)
            at = np.maximum(last, 0)
            checked = (last == last_row) | (origin is None)
            stale = checked & is_stale(bars.time_ms[at] + step, times_ms, step)
            kept = (last >= 0) & np.isfinite(s.atr_pct[at]) & ~stale
            shown[symbol] = np.where(kept, last, -1)
        return shown

    def quiet_key(self, now_ms: int) -> object:
        """Everything of the view at `now_ms` but its prices and 5-minute returns: the symbols
        shown, their signals, ATR, regimes, z-scores and funding rates, the global regime and
        the correlations' refresh period. Two instants with equal keys give views that differ
        only in prices and returns (a backtest's quiet steps, replay_quiet.py). None when
        funding is not a recorded series (then it is asked at each instant)."""
        if not self._funding_recorded:
            return None
        held = self._quiet
        if held is None or not held[0] <= now_ms < held[1]:
            runs = self._quiet_runs
            rows = self._rows_at(now_ms)
            symbols = tuple((symbol, runs[symbol].item(last)) for symbol, _, last in rows)
            held = self._quiet = (now_ms, self._rows_hold_until(now_ms), symbols)
        period = now_ms // self._windows.correlation_refresh_ms
        return held[2], period, self._global_regime(now_ms)

    def _rows_hold_until(self, now_ms: int) -> int:
        """An instant before which every symbol's visible row stays in the run of equal quiet
        fields it is in at `now_ms` (`quiet_runs`), and shown or left out as then: so the
        symbols' part of `quiet_key` holds. Where that is not known cheaply (data with gaps,
        the last recorded row, whose age can hide it), the next millisecond."""
        until = []
        for symbol, s in self._series.items():
            origin, bars, last_row = self._origins[symbol], s.bars, self._last_rows[symbol]
            last = last_closed_row(bars, origin, last_row, now_ms)
            if origin is None or last == last_row:
                return now_ms + 1
            if last < 0:  # the first row closes at origin + one bar
                until.append(origin + bars.timeframe_ms)
                continue
            # The row that leaves the run, or the last row (from which on the age counts),
            # becomes the visible one when it closes.
            row = self._quiet_leaves[symbol].item(last)
            until.append(origin + (row + 1) * bars.timeframe_ms)
        return min(until, default=now_ms + 1)

    def _slow_fields(
        self, now_ms: int, rows: Sequence[tuple[str, SymbolSeries, int]]
    ) -> _SlowFields:
        """ATR, regimes, z-scores and signals at `rows` (shown at `now_ms`): the last ones
        built while every row is in the same run of equal slow fields as then. Found so a
        second time, they are held without looking at the rows until a row may leave its run
        (`_rows_hold_until`; a model asked once, as the daemon's, never computes that)."""
        held = self._slow
        if held is not None and held.since <= now_ms < held.until:
            return held.fields
        runs = self._slow_runs
        key = tuple([(symbol, runs[symbol].item(last)) for symbol, _, last in rows])
        if held is not None and held.key == key:
            self._slow = _HeldSlow(key, held.fields, now_ms, self._rows_hold_until(now_ms))
            return held.fields
        atr_pct: dict[str, float] = {}
        regimes: dict[str, Regime] = {}
        zscores: dict[str, float] = {}
        signals: list[Signal] = []
        for symbol, s, last in rows:
            atr_pct[symbol] = s.atr_pct.item(last)
            regimes[symbol] = s.regime[last]
            if math.isfinite(zscore := s.return_zscore.item(last)):
                zscores[symbol] = zscore
            signals.append(self._signals.of_run(symbol, s.signals, self._runs[symbol].item(last)))
        fields = (atr_pct, regimes, zscores, signals)
        self._slow = _HeldSlow(key, fields, now_ms, now_ms)  # held from its second instant on
        return fields

    def _correlations_at(
        self,
        now_ms: int,
        returns: Mapping[str, FloatArray],
        rows: Sequence[tuple[str, SymbolSeries, int]],
    ) -> CorrelationMatrix:
        """Recomputed once per refresh period, not per cycle or per candidate; computed
        ahead when `look_ahead` asked for it and the rows are those it was computed from."""
        period = now_ms // self._windows.correlation_refresh_ms
        if self._correlations is None or self._correlations[0] != period:
            ahead = self._ahead
            matrix = ahead.at(period, _rows_key(rows)) if ahead is not None else None
            if matrix is None:
                matrix = correlation_matrix(returns, None, self._windows.returns_bars)
            self._correlations = (period, matrix)
        return self._correlations[1]


def _shown_row(s: SymbolSeries, origin: int | None, last_row: int, now_ms: int) -> int:
    """The row of `s` a view at `now_ms` shows, or -1 when it leaves the symbol out (`origin`
    and `last_row` as `MarketModel` keeps them)."""
    bars = s.bars
    last = last_closed_row(bars, origin, last_row, now_ms)
    # .item(): a Python scalar without the numpy scalar in between (hot path).
    if last < 0 or not math.isfinite(s.atr_pct.item(last)):
        return -1
    # On a gap-free grid only the last recorded bar can be too old (hot path).
    if (origin is None or last == last_row) and is_stale(
        bars.time_ms.item(last) + bars.timeframe_ms, now_ms, bars.timeframe_ms
    ):
        return -1  # a gap in its data: no price, no signal until it resumes
    return last
