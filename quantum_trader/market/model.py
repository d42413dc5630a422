"""The market model: everything about the market that does not depend on the account, per bar.

ATR % and regimes are computed on closed hourly bars (the strategy's timeframe: 5 m ATR puts
stops inside the noise) and forward-filled onto the execution bars, which carry prices,
returns and the signals' alignment.

It is computed vectorized in one pass (ATR %, returns, regimes, signals) and read at any instant
with `state_at`. The daemon computes it each cycle over its trailing window and reads the newest
row; the backtest computes it once over the whole range and reads row after row. Both read the
same way, so both run the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import (
    Action,
    Bars,
    FloatArray,
    GlobalRegime,
    MarketRules,
    MarketView,
    Regime,
    Signal,
    SignalSeries,
    Vote,
)
from quantum_trader.market import indicators
from quantum_trader.market.resample import hourly_row_for, on_rows, resample_hourly
from quantum_trader.ports import SignalSource

RegimeFn = Callable[[Bars], npt.NDArray[np.object_]]
FundingFn = Callable[[str, int], float]
GlobalRegimeFn = Callable[[int], GlobalRegime]
_ACTIONS = {1: Action.BUY, -1: Action.SELL, 0: Action.HOLD}


def constant_regime(bars: Bars) -> npt.NDArray[np.object_]:
    """No regime detection: every bar RANGING (the neutral choice)."""
    return np.full(len(bars), Regime.RANGING, dtype=object)


@dataclass(frozen=True, slots=True)
class SymbolSeries:
    bars: Bars
    atr_pct: FloatArray
    returns: FloatArray
    regime: npt.NDArray[np.object_]
    signals: SignalSeries


@dataclass(frozen=True, slots=True)
class MarketState:
    """The market view at one instant and the signals of its newest closed bars."""

    view: MarketView
    signals: list[Signal]


def _symbol_series(bars: Bars, signals: SignalSeries, regime: RegimeFn) -> SymbolSeries:
    """ATR and regime on closed hourly bars, forward-filled onto the execution rows."""
    hourly = resample_hourly(bars)
    rows = hourly_row_for(bars, hourly)
    hourly_regime = regime(hourly)
    regimes = np.full(len(bars), Regime.CHOPPY, dtype=object)
    known = rows >= 0
    regimes[known] = hourly_regime[rows[known]]
    return SymbolSeries(
        bars,
        on_rows(indicators.atr_pct(hourly), rows),
        indicators.simple_returns(bars.close),
        regimes,
        signals,
    )


class MarketModel:
    def __init__(
        self,
        series: Mapping[str, SymbolSeries],
        rules: Mapping[str, MarketRules],
        source_name: str,
        funding_rate_8h: FundingFn,
        global_regime: GlobalRegimeFn,
        returns_window: int,
    ) -> None:
        self._series = dict(series)
        self._rules = rules
        self._source = source_name
        self._funding = funding_rate_8h
        self._global_regime = global_regime
        self._returns_window = returns_window

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
        returns_window: int = 288,
    ) -> MarketModel:
        signals = source.evaluate(bars, tail=tail)
        series = {
            symbol: _symbol_series(b, signals[symbol], regime)
            for symbol, b in bars.items()
            if len(b) and symbol in signals
        }
        return cls(series, rules, source.name, funding_rate_8h, global_regime, returns_window)

    def state_at(self, now_ms: int) -> MarketState:
        """The view as of `now_ms`: only bars closed by then are visible."""
        prices: dict[str, Decimal] = {}
        atr_pct: dict[str, float] = {}
        regimes: dict[str, Regime] = {}
        returns: dict[str, FloatArray] = {}
        signals: list[Signal] = []
        for symbol, s in self._series.items():
            last = s.bars.closed_before(now_ms) - 1
            if last < 0 or not np.isfinite(s.atr_pct[last]):
                continue
            prices[symbol] = Decimal(repr(float(s.bars.close[last])))
            atr_pct[symbol] = float(s.atr_pct[last])
            regimes[symbol] = s.regime[last]
            returns[symbol] = s.returns[max(1, last + 1 - self._returns_window) : last + 1]
            signals.append(self._signal(symbol, s.signals, last))
        view = MarketView(
            time=utc_from_ms(now_ms),
            prices=prices,
            rules=self._rules,
            atr_pct=atr_pct,
            regimes=regimes,
            global_regime=self._global_regime(now_ms),
            returns=returns,
            funding_rate_8h={symbol: self._funding(symbol, now_ms) for symbol in prices},
        )
        return MarketState(view, signals)

    def _signal(self, symbol: str, series: SignalSeries, row: int) -> Signal:
        votes = tuple(
            Vote(model, _ACTIONS[int(actions[row])], float(confidences[row]))
            for model, (actions, confidences) in series.votes.items()
        )
        return Signal(
            symbol,
            _ACTIONS[int(series.action[row])],
            float(series.confidence[row]),
            self._source,
            votes,
        )
