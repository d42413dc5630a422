"""Triple-barrier labels reproduce hand-computed trades: long and short, each barrier, costs.

Every case: entry 100 at the close of bar 0, ATR 1 % → stop 1.5 % (SPEC §5.1); RANGING → target
1.5 R = 2.25 %; default costs: taker 4 bps and slippage 2 bps on each leg at the leg's price
(the order is small and the ATR normal), so a round trip costs (100 + exit) × 0.0006 per unit;
1 R = 1.5 per unit. Bars are given as (open, high, low, close), hourly, from 2025-01-01.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.config import Settings
from quantum_trader.domain import Bars, ExitReason, Regime, Side
from quantum_trader.market import indicators
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.regime import REGIMES, regime_series
from quantum_trader.market.replay import FundingSeries
from quantum_trader.signals.labels import ExitRules, simulate_trade, triple_barrier_labels

HOUR = 3_600_000
START = 1_735_689_600_000  # 2025-01-01 00:00 UTC
RULES = ExitRules.of(Settings())
COST = 0.0006  # taker 4 bps + slippage 2 bps per leg


def bars(*ohlc: tuple[float, float, float, float]) -> Bars:
    rows = np.array([(100.0, 100.0, 100.0, 100.0), *ohlc])
    n = rows.shape[0]
    return Bars(
        "TEST/USDT:USDT",
        HOUR,
        START + HOUR * np.arange(n, dtype=np.int64),
        rows[:, 0],
        rows[:, 1],
        rows[:, 2],
        rows[:, 3],
        np.ones(n),
    )


def trade(
    side: Side, *ohlc: tuple[float, float, float, float], funding: FundingSeries | None = None
) -> tuple[float, ExitReason, int]:
    outcome = simulate_trade(bars(*ohlc), funding, 0, side, 0.01, Regime.RANGING, RULES)
    assert outcome is not None
    return outcome.r_after_costs, outcome.reason, outcome.exit_ms


def r_of(pnl_per_unit: float, exit_price: float) -> float:
    return (pnl_per_unit - (100.0 + exit_price) * COST) / 1.5


def test_a_long_stopped_out_loses_one_r_plus_its_costs() -> None:
    r, reason, exit_ms = trade(Side.LONG, (100.0, 100.5, 98.0, 99.0))
    assert reason is ExitReason.SL_HIT
    assert r == pytest.approx(r_of(-1.5, 98.5), abs=1e-12)
    assert exit_ms == START + 2 * HOUR  # the close of the bar that hit the stop


def test_a_long_at_its_target_earns_the_target_less_costs() -> None:
    r, reason, _ = trade(Side.LONG, (100.0, 102.5, 99.5, 102.0))
    assert reason is ExitReason.TP_HIT
    assert r == pytest.approx(r_of(2.25, 102.25), abs=1e-12)


def test_a_bar_through_both_barriers_is_a_stop() -> None:
    r, reason, _ = trade(Side.LONG, (100.0, 103.0, 98.0, 101.0))
    assert reason is ExitReason.SL_HIT
    assert r == pytest.approx(r_of(-1.5, 98.5), abs=1e-12)


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    r, reason, _ = trade(Side.LONG, (100.2, 100.4, 99.6, 100.0), (97.0, 97.5, 96.5, 97.2))
    assert reason is ExitReason.SL_HIT
    assert r == pytest.approx(r_of(-3.0, 97.0), abs=1e-12)


def test_a_long_that_goes_nowhere_leaves_at_the_time_exit() -> None:
    flat = [(100.2, 100.4, 99.9, 100.2)] * 60
    r, reason, exit_ms = trade(Side.LONG, *flat)
    assert reason is ExitReason.TIME_EXIT
    # 48 h after the entry at 01:00 the monitor's next tick is in bar 49: it sells at its open.
    assert exit_ms == START + 50 * HOUR
    assert r == pytest.approx(r_of(0.2, 100.2), abs=1e-12)


def test_funding_settled_while_a_long_is_open_is_paid() -> None:
    settlements = FundingSeries.from_rates(
        np.array([START + 8 * HOUR, START + 16 * HOUR, START + 200 * HOUR], dtype=np.int64),
        np.array([0.0001, 0.0003, 0.5]),
    )
    flat = [(100.2, 100.4, 99.9, 100.2)] * 60
    r, _, _ = trade(Side.LONG, *flat, funding=settlements)
    paid = 100.0 * (0.0001 + 0.0003)  # the third settlement comes after the exit
    assert r == pytest.approx(r_of(0.2 - paid, 100.2), abs=1e-12)


def test_a_short_stopped_out_mirrors_the_long() -> None:
    r, reason, _ = trade(Side.SHORT, (100.0, 101.8, 99.6, 101.0))
    assert reason is ExitReason.SL_HIT
    assert r == pytest.approx(r_of(-1.5, 101.5), abs=1e-12)


def test_a_short_at_its_target() -> None:
    r, reason, _ = trade(Side.SHORT, (100.0, 100.3, 97.5, 98.0))
    assert reason is ExitReason.TP_HIT
    assert r == pytest.approx(r_of(2.25, 97.75), abs=1e-12)


def test_a_short_that_reached_break_even_exits_there_having_paid_its_costs() -> None:
    # +1.1 % in its favour moves the stop to the entry less 0.12 % (monitor.break_even_offset_pct)
    r, reason, _ = trade(Side.SHORT, (100.0, 100.3, 98.9, 99.2), (99.3, 100.1, 99.2, 100.0))
    assert reason is ExitReason.BREAK_EVEN
    assert r == pytest.approx(r_of(0.12, 99.88), abs=1e-12)
    assert abs(r) < 1e-3  # the offset pays the round trip


def test_a_trade_whose_data_ends_before_it_closes_has_no_label() -> None:
    assert (
        simulate_trade(
            bars((100.1, 100.3, 99.9, 100.0)), None, 0, Side.LONG, 0.01, Regime.RANGING, RULES
        )
        is None
    )


def test_a_label_reads_no_bar_after_its_own_window() -> None:
    """Perturbing every bar after a label's window changes nothing about that label; the
    window (entry close .. exit bar close) is what purging keeps out of training."""
    store = CandleStore(bundled_sample_dir())
    hourly = store.load_bars("BTC/USDT:USDT", "1h").slice(0, 900)
    rows = np.arange(300, 700, 37, dtype=np.int64)
    labels = triple_barrier_labels(hourly, None, rows, RULES)
    assert np.isfinite(labels.r).all()
    for i, t in enumerate(rows.tolist()):
        end = int(labels.exit_ms[i].max())
        after = hourly.time_ms >= end
        scale = np.where(after, 1.7, 1.0)
        changed = Bars(
            hourly.symbol,
            hourly.timeframe_ms,
            hourly.time_ms,
            hourly.open * scale,
            hourly.high * scale * np.where(after, 1.05, 1.0),
            hourly.low * scale,
            hourly.close * scale,
            hourly.volume,
        )
        again = triple_barrier_labels(changed, None, np.array([t]), RULES)
        np.testing.assert_array_equal(again.r[0], labels.r[i])
        assert end > int(hourly.time_ms[t]) + HOUR  # the window starts after the entry


def test_skipping_quiet_ticks_changes_no_outcome() -> None:
    """The fast path hands the monitor only ticks that can matter; every outcome is identical
    to handing it every tick (real BTC and DOGE hours, both sides, every regime they had)."""
    store = CandleStore(bundled_sample_dir())
    for symbol in ("BTC/USDT:USDT", "DOGE/USDT:USDT"):
        hourly = store.load_bars(symbol, "1h").slice(0, 1500)
        funding = FundingSeries.from_rates(*store.load_funding(symbol))
        atr = indicators.atr_pct(hourly)
        regimes = regime_series(hourly, RULES.regime)
        for t in range(200, 1400, 7):
            for side in (Side.LONG, Side.SHORT):
                args = (hourly, funding, t, side, float(atr[t]), REGIMES[regimes[t]], RULES)
                assert simulate_trade(*args) == simulate_trade(*args, skip_quiet_ticks=False)
