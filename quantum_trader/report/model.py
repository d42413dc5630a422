"""The backtest report as data: what report.json holds, the summary prints and the page shows.

Money in USDT, percentages as `_pct` (5.0 = 5 %), fractions otherwise (0.05 = 5 %), times
ISO 8601 UTC. `sample` is the stamp every output carries: OUT-OF-SAMPLE, IN-SAMPLE, or RULES
(NO TRAINED MODELS).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantum_trader.record import record

if TYPE_CHECKING:
    from quantum_trader.report.curve import Curve
    from quantum_trader.report.provenance import Provenance


@record
class RunContext:
    """What the database does not hold: the window, the run's settings and its speed.

    Here rather than beside build_report so that the replay can fill it in without importing
    the report's statistics and chart libraries (they load only once the replay is released).
    """

    start: datetime
    end: datetime
    symbols: tuple[str, ...]
    provenance: Provenance
    sizing_method: str
    initial_equity_usdt: float
    benchmark: Curve
    steps: int
    candles: int
    elapsed_s: float
    missing_inputs: tuple[str, ...] = ()  # one line each: what the data lacked at the start


@dataclass(slots=True)
class BacktestReport:
    start: str
    end: str
    symbols: list[str]
    sample: str
    signal_source: str
    provenance: dict[str, Any]
    sizing_method: str
    missing_inputs: list[str]  # optional inputs the data lacked: the results are without them
    initial_equity_usdt: float
    final_equity_usdt: float
    return_pct: float
    trades: int
    wins: int
    losses: int
    win_rate: float
    pnl_usdt: float
    fees_usdt: float
    funding_usdt: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    annual_return_pct: float | None
    volatility_pct: float | None
    max_drawdown_pct: float
    profit_factor: float | None
    expectancy_r: float | None  # None: no trade of known R (undefined, as PF with no loss)
    expectancy_usdt: float | None
    trade_statistics: dict[str, Any]
    average_risk_usdt: float
    average_r: float | None
    unknown_r_trades: int  # trades whose initial risk was unknown: left out of the R figures
    benchmark: dict[str, Any]
    halts: dict[str, Any]
    by_symbol: list[dict[str, Any]]
    by_side: list[dict[str, Any]]
    by_exit_reason: list[dict[str, Any]]
    durations: dict[str, float | None]  # None: no trade (or no winner, no loser) to measure
    monthly_returns: list[dict[str, Any]]
    exits_by_reason: dict[str, int]
    position_events_by_reason: dict[str, int]
    decisions_by_gate: dict[str, dict[str, int]]
    open_positions: int
    reconciled: bool
    reconciliation_errors: list[str]
    steps: int
    candles: int
    elapsed_s: float
    candles_per_s: float
    outputs: dict[str, str] = field(default_factory=dict)
    trade_list: list[dict[str, Any]] = field(default_factory=list)

    @property
    def in_sample(self) -> bool:
        return self.sample == "IN-SAMPLE"

    @property
    def unknown_r_left_out(self) -> str:
        """What the R figures leave out, said beside them ("" when nothing)."""
        n = self.unknown_r_trades
        return f"{n} trade{'s' if n > 1 else ''} of unknown R left out" if n else ""

    def to_json(self) -> str:
        """The same text as `json.dumps(asdict(self), indent=2, default=str)`, without asdict's
        deep copy of every value (a year's trade list made it most of the JSON's time)."""
        top = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps(top, indent=2, default=_as_asdict_would)

    def write(self, path: Path) -> None:
        """Write report.json through a temporary file (never a half-written report)."""
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(self.to_json(), encoding="utf-8")
        os.replace(temporary, path)


def _as_asdict_would(value: object) -> object:
    """What json cannot encode itself: a dataclass as the dict asdict makes of it, anything else
    as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)
