"""The market model and the rule agent: no look-ahead, and live equals backtest."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Bars, Regime
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.model import MarketModel, MarketState
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import SignalsSettings

BTC = "BTC/USDT:USDT"
STORE = CandleStore(bundled_sample_dir())
BARS = STORE.load_bars(BTC, "5m").slice(0, 4000)
AGENT = RuleAgent(SignalsSettings())


def perturbed_after(bars: Bars, t: int, seed: int) -> Bars:
    """The same bars up to row t; rows after t replaced by a different random walk."""
    rng = np.random.default_rng(seed)
    close = bars.close.copy()
    close[t + 1 :] = close[t] * np.exp(np.cumsum(rng.normal(0, 0.01, len(bars) - t - 1)))
    high, low, open_ = bars.high.copy(), bars.low.copy(), bars.open.copy()
    open_[t + 1 :] = close[t + 1 :]
    high[t + 1 :] = close[t + 1 :] * 1.002
    low[t + 1 :] = close[t + 1 :] * 0.998
    return Bars(bars.symbol, bars.timeframe_ms, bars.time_ms, open_, high, low, close, bars.volume)


@settings(max_examples=15, deadline=None)
@given(t=st.integers(min_value=2000, max_value=3900), seed=st.integers(0, 1000))
def test_the_rule_agent_never_looks_ahead(t: int, seed: int) -> None:
    original = AGENT.evaluate({BTC: BARS})[BTC]
    changed = AGENT.evaluate({BTC: perturbed_after(BARS, t, seed)})[BTC]
    assert np.array_equal(original.action[: t + 1], changed.action[: t + 1])
    assert np.allclose(original.confidence[: t + 1], changed.confidence[: t + 1])


def test_an_hourly_signal_reaches_the_five_minute_rows_only_after_its_hour_closed() -> None:
    series = AGENT.evaluate({BTC: BARS})[BTC]
    changes = np.flatnonzero(np.diff(series.action.astype(int)) != 0) + 1
    assert changes.size
    closes = BARS.time_ms[changes] + BARS.timeframe_ms
    assert np.all(closes % 3_600_000 == 0)  # a new signal appears on the bar that closes an hour


def test_the_live_window_decides_what_the_whole_history_decides() -> None:
    """Identical actions and prices; confidences agree to 1e-3 (what is left of the EMA seeds
    after the warm-up window differs by ~4e-5)."""
    feed = ReplayFeed(STORE, (BTC, "ETH/USDT:USDT"), "5m", 2500)
    rules = default_market_rules(feed.symbols)
    whole = MarketModel.compute(feed.bars, AGENT, rules, tail=None)
    for day in (12, 20, 28):
        now_ms = ms_from_utc(datetime(2025, 9, day, 13, 5, tzinfo=UTC))
        window = feed.snapshot_at(now_ms).bars
        live = MarketModel.compute(window, AGENT, rules, tail=1).state_at(now_ms)
        replay = whole.state_at(now_ms)
        assert [(s.symbol, s.action) for s in live.signals] == [
            (s.symbol, s.action) for s in replay.signals
        ]
        for a, b in zip(live.signals, replay.signals, strict=True):
            assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
        assert live.view.prices == replay.view.prices


def test_a_view_without_regime_detection_shows_the_regime_members_themselves() -> None:
    """The gates compare regimes by identity (`regime is Regime.RANGING`): a plain string
    equal to one would silently skip them."""
    feed = ReplayFeed(STORE, (BTC, "ETH/USDT:USDT"), "5m", 2500)
    model = MarketModel.compute(feed.bars, AGENT, default_market_rules(feed.symbols), tail=None)
    view = model.state_at(ms_from_utc(datetime(2025, 9, 20, 13, 5, tzinfo=UTC))).view
    assert view.regimes
    assert all(regime is Regime.RANGING for regime in view.regimes.values())


def test_only_closed_bars_are_visible() -> None:
    feed = ReplayFeed(STORE, (BTC,), "5m", 300)
    bar = feed.bars[BTC]
    now_ms = int(bar.time_ms[1000]) + 60_000  # one minute into bar 1000
    visible = feed.snapshot_at(now_ms).bars[BTC]
    assert visible.time_ms[-1] == bar.time_ms[999]


def test_an_unknown_symbol_is_a_clear_error() -> None:
    with pytest.raises(MarketDataError, match="unknown symbol 'NOPE/USDT:USDT'"):
        STORE.load_bars("NOPE/USDT:USDT", "5m")


def test_nan_in_recorded_data_is_a_clear_error(tmp_path: object) -> None:
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.feather as feather

    folder = Path(str(tmp_path))
    table = feather.read_table(STORE.candle_path(BTC, "5m")).slice(0, 50)
    close = table["close"].to_numpy().copy()
    close[7] = np.nan
    table = table.set_column(table.schema.get_field_index("close"), "close", pa.array(close))
    feather.write_feather(table, folder / "BTC_USDT_USDT-5m-futures.feather")
    with pytest.raises(MarketDataError, match="close is not a number at row 7"):
        CandleStore(folder).load_bars(BTC, "5m")


@settings(max_examples=200, deadline=None)
@given(offset_ms=st.integers(min_value=-10_000_000, max_value=4100 * 300_000))
def test_the_grid_arithmetic_finds_the_row_a_binary_search_finds(offset_ms: int) -> None:
    from quantum_trader.market.series import grid_origin, last_closed_row

    now_ms = int(BARS.time_ms[0]) + offset_ms
    origin = grid_origin(BARS)
    assert origin is not None
    assert last_closed_row(BARS, origin, len(BARS) - 1, now_ms) == BARS.closed_before(now_ms) - 1


@pytest.mark.parametrize("gapped", [False, True], ids=["grid", "with a gap"])
def test_a_symbol_whose_data_ended_leaves_the_view_once_a_bar_is_missing(gapped: bool) -> None:
    """More than one bar that should have closed is missing: no price, no signal. Holds for a
    gap-free recording (rows found by arithmetic) and one with a gap (binary search)."""
    bars = BARS.slice(0, 3000)
    if gapped:  # a day missing in the middle
        bars = bars.take(np.r_[0:1000, 1288:3000])
    model = MarketModel.compute({BTC: bars}, AGENT, default_market_rules((BTC,)), tail=None)
    last_close = int(bars.time_ms[-1]) + bars.timeframe_ms
    step = bars.timeframe_ms
    for now_ms, visible in (
        (last_close, True),
        (last_close + step, True),  # one bar late: allowed
        (last_close + 2 * step, False),
        (last_close + 50 * step, False),
    ):
        view = model.state_at(now_ms).view
        assert (BTC in view.prices) is visible, now_ms - last_close
    if gapped:  # inside the gap, the symbol is out of view as well
        inside = int(bars.time_ms[999]) + 20 * step
        assert BTC not in model.state_at(inside).view.prices
        assert BTC in model.state_at(int(bars.time_ms[999]) + step).view.prices


@pytest.fixture(scope="module")
def uneven() -> MarketModel:
    """Three symbols shown differently: a gap-free grid, a recording with a day missing (rows
    by binary search), and one that ends early (left out once a bar is missing)."""
    eth, sol = "ETH/USDT:USDT", "SOL/USDT:USDT"
    bars = {
        BTC: BARS.slice(0, 3000),
        eth: STORE.load_bars(eth, "5m").slice(0, 3000).take(np.r_[0:1000, 1288:3000]),
        sol: STORE.load_bars(sol, "5m").slice(0, 2000),
    }
    return MarketModel.compute(bars, AGENT, default_market_rules(tuple(bars)), tail=None)


@settings(max_examples=100, deadline=None)
@given(offsets=st.lists(st.integers(-20 * 300_000, 3100 * 300_000), min_size=1, max_size=50))
def test_the_rows_shown_at_many_instants_at_once_are_those_shown_at_each(
    uneven: MarketModel, offsets: list[int]
) -> None:
    """A correlation job's rows, found for all its instants at once, are the rows the view
    at each instant shows (before the data, in the warm-up, inside a gap, on any minute, after
    a symbol's data ended)."""
    start = int(BARS.time_ms[0])
    times = np.array([start + offset for offset in offsets], dtype=np.int64)
    at_once = uneven._visible_rows_at(times)
    for i, now_ms in enumerate(times.tolist()):
        one_by_one = {symbol: row for symbol, _, row in uneven._visible_rows(now_ms)}
        assert {s: int(rows[i]) for s, rows in at_once.items() if rows[i] >= 0} == one_by_one


def test_a_correlation_job_has_the_rows_each_period_starts_with(uneven: MarketModel) -> None:
    start = int(BARS.time_ms[0])
    end = start + 3100 * 300_000
    job = uneven.correlation_job(start, end)
    starts = [period * 3_600_000 for period in range(job.first, job.first + len(job.rows))]
    assert starts[0] <= start < starts[0] + 3_600_000
    assert starts[-1] <= end < starts[-1] + 3_600_000
    for rows, period_start in zip(job.rows, starts, strict=True):
        assert rows == tuple((symbol, row) for symbol, _, row in uneven._visible_rows(period_start))


@pytest.fixture(scope="module")
def recorded() -> tuple[MarketModel, int]:
    """The backtest's model of two bundled symbols (regimes, funding, global regime) and the
    first instant after its warm-up; correlations refreshed daily, so that the hour does not
    move the key by itself."""
    feed = ReplayFeed(STORE, (BTC, "ETH/USDT:USDT"), "5m", 2500)
    return _backtest_model(feed, correlation_refresh_ms=86_400_000), ms_from_utc(feed.start)


def _backtest_model(feed: ReplayFeed, **windows: int) -> MarketModel:
    """The backtest's model of `feed`'s symbols (regimes, funding, global regime, rule
    signals), with `windows` changed from the settings' statistics windows."""
    from dataclasses import replace

    from quantum_trader.config import Settings
    from quantum_trader.market import setup

    settings = Settings(signals={"source": "rules"})
    return MarketModel.compute(
        feed.bars,
        AGENT,
        default_market_rules(feed.symbols),
        tail=None,
        regime=setup.regime_function(settings),
        funding_series=feed.funding,
        global_regime=setup.global_regime_timeline(STORE, settings),
        windows=replace(setup.statistics_windows(settings), **windows),
    )


def _all_but_prices(model: MarketModel, now_ms: int) -> tuple[object, ...]:
    return _all_but_prices_of(model.state_at(now_ms))


def _all_but_prices_of(state: MarketState) -> tuple[object, ...]:
    view = state.view
    matrix = view.correlations
    statistics = (matrix.symbols, matrix.values.tobytes()) if matrix is not None else None
    return (
        tuple(view.prices),
        view.atr_pct,
        view.regimes,
        view.return_zscore,
        view.funding_rate_8h,
        view.global_regime,
        statistics,
        tuple(state.signals),
    )


@settings(max_examples=300, deadline=None)
@given(row=st.integers(min_value=0, max_value=20_000), later=st.integers(1, 36))
def test_equal_quiet_keys_give_views_equal_but_for_prices_and_returns(
    recorded: tuple[MarketModel, int], row: int, later: int
) -> None:
    """What a backtest's repeated step rests on (replay_quiet.py): every field the cycle and
    the governor read, but prices and 5-minute returns, is the same at two instants with the
    same key."""
    model, start_ms = recorded
    first = start_ms + row * 300_000
    second = first + later * 300_000
    if model.quiet_key(first) == model.quiet_key(second):
        assert _all_but_prices(model, first) == _all_but_prices(model, second)


@settings(max_examples=300, deadline=None)
@given(row=st.integers(min_value=0, max_value=20_000), later=st.integers(0, 36))
def test_a_quiet_key_kept_from_an_earlier_instant_is_the_one_computed_afresh(
    recorded: tuple[MarketModel, int], row: int, later: int
) -> None:
    """The model keeps the symbols' part of the key until a row leaves its run; the key it
    answers from that is the one it computes with nothing kept."""
    model, start_ms = recorded
    first = start_ms + row * 300_000
    second = first + later * 300_000
    model.quiet_key(first)
    kept = model.quiet_key(second)
    model.quiet_key(second + 30 * 86_400_000)  # keeps a later instant's instead
    assert model.quiet_key(second) == kept


@pytest.fixture(scope="module")
def afresh() -> MarketModel:
    """Another model of `recorded`'s market."""
    feed = ReplayFeed(STORE, (BTC, "ETH/USDT:USDT"), "5m", 2500)
    return _backtest_model(feed, correlation_refresh_ms=86_400_000)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=12))
def test_a_state_kept_or_held_is_the_one_computed_afresh(
    recorded: tuple[MarketModel, int], afresh: MarketModel, rows: list[int]
) -> None:
    """The model keeps its last instant's state (a backtest step's checks and its cycle both
    ask), and holds the slow fields of a run it was asked twice in: asked again, or at the
    steps after, the state equals one computed at that instant by a model that kept none (but
    for the correlations, computed at the first instant a period is asked)."""
    model, start_ms = recorded
    for now in [start_ms + (row + step) * 300_000 for row in rows for step in range(4)]:
        first = model.state_at(now)
        assert model.state_at(now) is first
        afresh.state_at(now + 86_400_000)  # so that what it keeps is of another day
        fresh = afresh.state_at(now)
        kept, computed = _all_but_prices_of(first), _all_but_prices_of(fresh)
        assert kept[:STATISTICS] + kept[STATISTICS + 1 :] == (
            computed[:STATISTICS] + computed[STATISTICS + 1 :]
        )
        assert first.view.prices == fresh.view.prices
        assert first.view.returns.keys() == fresh.view.returns.keys()
        for symbol, returns in first.view.returns.items():
            assert returns.tobytes() == fresh.view.returns[symbol].tobytes()


STATISTICS = 6  # the correlations' place in `_all_but_prices_of`


@settings(max_examples=100, deadline=None)
@given(offsets=st.lists(st.integers(-20 * 300_000, 3100 * 300_000), min_size=1, max_size=20))
def test_the_prices_alone_are_those_the_view_shows(uneven: MarketModel, offsets: list[int]) -> None:
    """`prices_at` (a backtest's quiet steps ask it for a stretch's range of prices) answers
    what the view at that instant shows of the symbols asked, asked before the view or
    after it, a symbol in a gap in its data left out of both."""
    symbols = [*uneven._series, "NOTLISTED"]
    for now in [int(BARS.time_ms[0]) + offset for offset in offsets]:
        alone = uneven.prices_at(now, symbols)
        some = uneven.prices_at(now, symbols[1:])
        shown = uneven.state_at(now).view.prices
        assert alone == shown
        assert some == {s: p for s, p in shown.items() if s in symbols[1:]}
        assert uneven.prices_at(now, symbols) == shown
        assert uneven.prices_at(now, symbols[1:]) == some


def test_the_symbols_quiet_rows_are_kept_until_the_next_hourly_row_at_most(
    recorded: tuple[MarketModel, int],
) -> None:
    """Recorded data are a gap-free grid: the horizon is known, and within the hour."""
    model, start_ms = recorded
    for i in range(24 * 12):
        now = start_ms + i * 300_000
        until = model._rows_hold_until(now)
        assert now + 300_000 <= until <= (now // 3_600_000 + 1) * 3_600_000


def test_the_quiet_key_stays_within_an_hour_and_moves_across_hours(
    recorded: tuple[MarketModel, int],
) -> None:
    model, start_ms = recorded
    keys = [model.quiet_key(start_ms + i * 300_000) for i in range(24 * 12)]
    assert None not in keys
    repeats = sum(a == b for a, b in itertools.pairwise(keys))
    assert 200 < repeats < len(keys) - 1  # most 5-minute steps keep it; hours move it


@pytest.fixture(scope="module")
def hourly() -> tuple[MarketModel, MarketModel, int]:
    """The backtest's model of three bundled symbols twice, one computing its hourly
    correlation matrices a day ahead (`look_ahead`), and the first instant after warm-up."""
    feed = ReplayFeed(STORE, (BTC, "ETH/USDT:USDT", "SOL/USDT:USDT"), "5m", 2500)
    ahead = _backtest_model(feed)
    ahead.look_ahead(24)
    return ahead, _backtest_model(feed), ms_from_utc(feed.start)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=6_000), min_size=1, max_size=40),
    on_the_hour=st.booleans(),
)
def test_correlations_computed_ahead_are_the_ones_computed_when_asked(
    hourly: tuple[MarketModel, MarketModel, int], steps: list[int], on_the_hour: bool
) -> None:
    """Bit for bit, at any instants in time order, on the hour (where the matrix ahead was
    computed at the instant asked) or between (where it was not, unless the rows agree)."""
    ahead, asked, start_ms = hourly
    for step in sorted(steps):
        now = start_ms + step * 300_000
        now = now - now % 3_600_000 if on_the_hour else now
        mine = ahead.state_at(now).view.correlations
        theirs = asked.state_at(now).view.correlations
        assert mine is not None
        assert theirs is not None
        assert mine.symbols == theirs.symbols
        assert mine.values.tobytes() == theirs.values.tobytes()
