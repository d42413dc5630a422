"""After a gap in a symbol's candles (market/gaps.py): no indicator reads across it, and until
the data after it covers the history its signals read, the symbol shows no signal, the ATR and
regime of before the gap, and its price. The backtest's model, the daemon's (a live feed whose
exchange answered with a maintenance window's candles missing) and the backtest's notes agree.

The market: the bundled sample's BTC with three days cut out (2025-10-06 .. 10-09), ETH whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pytest
from structlog.testing import capture_logs
from test_exchange_feed_fakes import SampleSource

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.domain import Action, Bars, GlobalRegime, MarketView, Regime, SignalSeries
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.market import setup
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.exchange_feed import ExchangeFeed
from quantum_trader.market.model import MarketModel
from quantum_trader.market.provider import LiveMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.ports import SignalSource
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import SignalsSettings

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
HOUR_MS = 3_600_000
STEP_MS = 300_000
GAP_FROM = ms_from_utc(datetime(2025, 10, 6, tzinfo=UTC))
RESUME = ms_from_utc(datetime(2025, 10, 9, tzinfo=UTC))
STORE = CandleStore(bundled_sample_dir())
SETTINGS = Settings(signals={"source": "rules"})
AGENT = RuleAgent(SignalsSettings())


def without(bars: Bars, first_ms: int, stop_ms: int) -> Bars:
    """`bars` without those opening in [first_ms, stop_ms): a gap."""
    return bars.take((bars.time_ms < first_ms) | (bars.time_ms >= stop_ms))


def gapped_market() -> dict[str, Bars]:
    return {
        BTC: without(STORE.load_bars(BTC, "5m"), GAP_FROM, RESUME),
        ETH: STORE.load_bars(ETH, "5m"),
    }


class BuysAlways:
    """BUY at confidence 0.9 on every bar of every symbol, reading `history_hours` back."""

    name = "buys-always"
    warmup_hours = 1

    def __init__(self, history_hours: int) -> None:
        self.history_hours = history_hours

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        series = {}
        for symbol, b in bars.items():
            action, confidence = np.ones(len(b), np.int8), np.full(len(b), 0.9)
            series[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return series


def model_of(bars: Mapping[str, Bars], source: SignalSource) -> MarketModel:
    """The backtest's model (regimes, statistics windows of the settings)."""
    return MarketModel.compute(
        bars,
        source,
        default_market_rules(tuple(bars)),
        tail=None,
        regime=setup.regime_function(SETTINGS),
        windows=setup.statistics_windows(SETTINGS),
    )


def btc_signal(view_model: MarketModel, now_ms: int) -> Action | None:
    signals = view_model.state_at(now_ms).signals
    return next((s.action for s in signals if s.symbol == BTC), None)


@pytest.fixture(scope="module")
def gapped() -> MarketModel:
    return model_of(gapped_market(), AGENT)


def slow_fields(view: MarketView) -> tuple[float, Regime, float | None]:
    return view.atr_pct[BTC], view.regimes[BTC], view.return_zscore.get(BTC)


def test_while_it_warms_up_the_symbol_is_priced_with_the_atr_and_regime_of_before_the_gap(
    gapped: MarketModel,
) -> None:
    """The rule agent reads 150 h back: for 151 closed hours after the gap its view shows
    the bar's close, the ATR % and regime of the last instant before the gap, no z-score and
    no signal but HOLD (was: an ATR and signals computed half from before the gap)."""
    before = gapped.state_at(GAP_FROM).view
    bars = gapped_market()[BTC]
    for hours in (0, 1, 5, 50, 150):
        now_ms = RESUME + hours * HOUR_MS + STEP_MS
        state = gapped.state_at(now_ms)
        row = int(np.searchsorted(bars.time_ms, now_ms - STEP_MS))
        assert float(state.view.prices[BTC]) == bars.close[row], hours
        assert slow_fields(state.view) == (before.atr_pct[BTC], before.regimes[BTC], None), hours
        (signal,) = [s for s in state.signals if s.symbol == BTC]
        assert (signal.action, signal.confidence) == (Action.HOLD, 0.0), hours
    assert ETH in before.prices  # the other symbol goes on as it was


def test_after_the_warm_up_the_indicators_are_those_of_a_recording_that_begins_after_the_gap(
    gapped: MarketModel,
) -> None:
    """ATR %, regime and z-score after the gap are computed from the bars after it alone:
    equal to those of a recording that begins where the data resume (was: read across it)."""
    bars = gapped_market()[BTC]
    resumed = bars.slice(int(np.searchsorted(bars.time_ms, RESUME)), len(bars))
    after = model_of({BTC: resumed}, AGENT)
    for hours in (151, 170, 400):
        now_ms = RESUME + hours * HOUR_MS + 7 * STEP_MS
        expected = slow_fields(after.state_at(now_ms).view)
        assert slow_fields(gapped.state_at(now_ms).view) == expected, hours


def test_bars_that_begin_just_before_the_gap_show_the_atr_restarted_after_it() -> None:
    """A daemon's window late in a warm-up holds too few bars before the gap for an ATR: the
    ATR computed from the bars after the gap alone is shown once defined (ATR_PERIOD hours),
    the price with it; before that the symbol is left out, as at a recording's start."""
    bars = gapped_market()[BTC]
    window = bars.slice(int(np.searchsorted(bars.time_ms, GAP_FROM - 5 * HOUR_MS)), len(bars))
    resumed = bars.slice(int(np.searchsorted(bars.time_ms, RESUME)), len(bars))
    model, after = model_of({BTC: window}, AGENT), model_of({BTC: resumed}, AGENT)
    assert BTC not in model.state_at(RESUME + STEP_MS).view.prices
    for hours in (15, 40, 149):
        now_ms = RESUME + hours * HOUR_MS
        view, expected = model.state_at(now_ms).view, after.state_at(now_ms).view
        assert (view.prices[BTC], view.atr_pct[BTC]) == (
            expected.prices[BTC],
            expected.atr_pct[BTC],
        ), hours
        assert btc_signal(model, now_ms) is Action.HOLD


@pytest.mark.parametrize("history_hours", [150, 24])
def test_no_signal_until_the_history_it_reads_lies_after_the_gap(history_hours: int) -> None:
    """A source that always buys: HOLD from the first bar after the gap until the close of the
    (history + 1)-th hourly bar after it, whose `history` bars before it are all after the
    gap (training's rule); BUY from then on. Inside the gap the symbol is out of view."""
    model = model_of(gapped_market(), BuysAlways(history_hours))
    warm_ms = RESUME + (history_hours + 1) * HOUR_MS
    assert btc_signal(model, GAP_FROM) is Action.BUY
    assert btc_signal(model, RESUME - HOUR_MS) is None  # inside the gap: not shown
    assert btc_signal(model, RESUME + STEP_MS) is Action.HOLD  # was BUY
    assert btc_signal(model, warm_ms - STEP_MS) is Action.HOLD
    assert btc_signal(model, warm_ms) is Action.BUY
    assert {s.symbol: s.action for s in model.state_at(RESUME + STEP_MS).signals}[ETH] is (
        Action.BUY
    )


def test_a_missing_hour_tolerated_by_training_starts_no_warm_up() -> None:
    """One hourly bar missing (MAX_MISSING_BARS) is no gap for training nor for the replay:
    the signal is used as soon as the symbol is shown again."""
    hole_ms = RESUME + 10 * HOUR_MS
    bars = {BTC: without(STORE.load_bars(BTC, "5m"), hole_ms, hole_ms + HOUR_MS)}
    model = model_of(bars, BuysAlways(150))
    assert btc_signal(model, hole_ms + HOUR_MS + STEP_MS) is Action.BUY
    assert model.warming_up(hole_ms + HOUR_MS + STEP_MS) == []


def test_the_daemon_decides_what_the_backtest_decides_and_says_the_warm_up_once() -> None:
    """The daemon's live market (an exchange that answered without the maintenance window's
    candles), cycle after cycle through the gap and the warm-up: the same symbols, prices and
    signals as the backtest's model; one `gap_warmup` line for the gap, at the first cycle
    after it."""
    source = BuysAlways(24)
    exchange = SampleSource(GAP_FROM - 10 * HOUR_MS, overrides={BTC: gapped_market()[BTC]})
    feed = ExchangeFeed(exchange, (BTC, ETH), "5m", setup.history_bars(SETTINGS, source))
    live = LiveMarket(
        feed,
        source,
        default_market_rules((BTC, ETH)),
        setup.regime_function(SETTINGS),
        lambda now_ms: GlobalRegime.SIDEWAYS,
        setup.statistics_windows(SETTINGS),
    )
    whole = model_of(gapped_market(), source)
    instants = [GAP_FROM - HOUR_MS, RESUME + STEP_MS, RESUME + 3 * HOUR_MS]
    instants += [RESUME + 25 * HOUR_MS - STEP_MS, RESUME + 25 * HOUR_MS, RESUME + 30 * HOUR_MS]
    with capture_logs() as logs:
        for now_ms in instants:
            exchange.now_ms = now_ms
            state = asyncio.run(live.state(utc_from_ms(now_ms)))
            replay = whole.state_at(now_ms)
            assert state.view.prices == replay.view.prices, now_ms
            actions = [(s.symbol, s.action) for s in state.signals]
            assert actions == [(s.symbol, s.action) for s in replay.signals], now_ms
    said = [e for e in logs if e["event"] == "gap_warmup"]
    assert [(e["symbol"], e["gap_to"], e["warm_from"]) for e in said] == [
        (BTC, "2025-10-09T00:00:00+00:00", "2025-10-10T01:00:00+00:00")
    ]


def test_the_backtest_says_each_gap_whose_warm_up_reaches_into_its_window() -> None:
    feed = ReplayFeed(STORE, (BTC, ETH), "5m", 300)
    feed.bars[BTC] = gapped_market()[BTC]
    with capture_logs() as logs:
        (line,) = setup.said_warmups(feed, RESUME + 100 * HOUR_MS, RESUME + 200 * HOUR_MS, 150)
        assert setup.said_warmups(feed, RESUME + 151 * HOUR_MS, RESUME + 200 * HOUR_MS, 150) == []
        assert setup.said_warmups(feed, GAP_FROM - 200 * HOUR_MS, GAP_FROM, 150) == []
    assert line.startswith(
        f"{BTC}: its candles miss 3 days from 2025-10-06 00:00 to 2025-10-09 00:00: no entry "
        "on its signals until 2025-10-15 07:00, when 150 hourly bars after the gap have closed"
    )
    assert [e["event"] for e in logs] == ["gap_warmup"]
