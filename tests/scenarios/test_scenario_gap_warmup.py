"""Three days missing from BTC's candles (2025-10-06 00:00 .. 10-09 00:00), the real core
stepped bar by bar across them (scenario_core.py) over a copy of the bundled sample in a tmp
dir, with signals that say BUY on BTC from the first bar after the gap on and read 24 h back.

A long seeded two hours before the gap, its stop 1.5 % below the entry, is held across it: the
prices after the gap open above that stop and reach it in the bar from 14:45. While BTC warms
up (25 closed hours after the gap, market/gaps.py) its price is shown, the stop is executed,
and nothing enters BTC on the signals; once it is warm, the core enters (was: it entered at
18:00 that day, on a signal, ATR and regime that read across the gap).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from scenario_core import Step, SteppedCore
from structlog.testing import capture_logs

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.clock import ms_from_utc
from quantum_trader.config import Settings
from quantum_trader.domain import Bars, ClosedTrade, ExitReason, Side, SignalSeries
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
GAP_FROM = datetime(2025, 10, 6, tzinfo=UTC)
RESUME = datetime(2025, 10, 9, tzinfo=UTC)
HISTORY_H = 24
WARM = RESUME + timedelta(hours=HISTORY_H + 1)
SEED_AT = GAP_FROM - timedelta(hours=2)
END = WARM + timedelta(hours=6)
STOP_FRACTION = Decimal("0.015")


class BuysBitcoinAfter:
    """BUY at confidence 0.9 on BTC's bars opening at or after `from_ms`, HOLD elsewhere."""

    name = "buys-bitcoin-after"
    warmup_hours = 1
    history_hours = HISTORY_H

    def __init__(self, from_ms: int) -> None:
        self._from_ms = from_ms

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        series = {}
        for symbol, b in bars.items():
            buys = (b.time_ms >= self._from_ms) & (symbol == BTC)
            action, confidence = buys.astype(np.int8), np.where(buys, 0.9, 0.0)
            series[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return series


def gapped_market(root: Path) -> Path:
    """A market dir with the sample's BTC and ETH (5 m candles, funding, rules), BTC's 5 m
    candles without the three days."""
    sample = bundled_sample_dir()
    market = root / "market"
    market.mkdir()
    for stem in ("BTC_USDT_USDT", "ETH_USDT_USDT"):
        for kind in ("5m-futures", "1h-funding_rate"):
            shutil.copy(sample / f"{stem}-{kind}.feather", market)
    shutil.copy(next(sample.glob("exchange-info-*.json")), market)
    path = market / "BTC_USDT_USDT-5m-futures.feather"
    table = feather.read_table(path)
    times = CandleStore(market).load_bars(BTC, "5m").time_ms
    first, stop = np.searchsorted(times, [ms_from_utc(GAP_FROM), ms_from_utc(RESUME)])
    feather.write_feather(pa.concat_tables([table.slice(0, first), table.slice(stop)]), path)
    return market


async def play(market: Path) -> tuple[list[Step], list[ClosedTrade], list[datetime]]:
    """Each step, BTC's closed trades, and the steps at which a BTC position was opened."""
    settings = Settings(
        market={"replay_dir": market, "symbols": (BTC, ETH)},
        monitor={"max_hold_h": 240},  # held through the gap: no time exit at its end
    )
    source = BuysBitcoinAfter(ms_from_utc(RESUME))
    run = await SteppedCore.open(settings, SEED_AT, source)
    steps, opened, now = [], [], SEED_AT
    while now < END:
        held = BTC in run.core.keeper.positions
        step = await run.step(now)
        steps.append(step)
        if now == SEED_AT:
            await run.seed_position(BTC, Side.LONG, Decimal(1_000), STOP_FRACTION)
        elif not held and BTC in run.core.keeper.positions:
            opened.append(now)
        now += run.step_size
    trades = [t for t in await run.repository.closed_trades() if t.symbol == BTC]
    return steps, trades, opened


@pytest.fixture(scope="module")
def played(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[Step], list[ClosedTrade], list[datetime]]:
    return asyncio.run(play(gapped_market(tmp_path_factory.mktemp("gap_warmup"))))


def test_the_position_held_across_the_gap_is_stopped_during_the_warm_up(
    played: tuple[list[Step], list[ClosedTrade], list[datetime]],
) -> None:
    _, trades, _ = played
    seeded = trades[0]
    assert seeded.exit_reason is ExitReason.SL_HIT
    assert RESUME < seeded.closed_at < WARM
    assert seeded.exit_price < seeded.entry_price


def test_the_price_is_shown_during_the_warm_up_and_nothing_enters_until_it_ends(
    played: tuple[list[Step], list[ClosedTrade], list[datetime]],
) -> None:
    steps, _, opened = played
    warming = [s.now for s in steps if RESUME < s.now < WARM and BTC in s.market.prices]
    assert len(warming) == 25 * 12 - 1  # every bar close after the gap's first one
    # Inside the gap (one bar late is allowed) the symbol is out of view.
    inside = [s for s in steps if GAP_FROM + timedelta(minutes=10) <= s.now <= RESUME]
    assert [s.now for s in inside if BTC in s.market.prices] == []
    assert opened[:1] == [WARM]  # was: 2025-10-09 18:00


def test_the_backtest_says_the_warm_up_once_in_its_output_and_its_report(tmp_path: Path) -> None:
    """The rule agent reads 150 h back: the backtest names the gap and the end of the warm-up
    once, as a shown warning and a line of its report's `missing_inputs`."""
    settings = Settings(
        market={"replay_dir": gapped_market(tmp_path), "symbols": (BTC, ETH)},
        signals={"source": "rules"},
    )
    start, end = RESUME - timedelta(days=1), RESUME + timedelta(days=2)
    request = BacktestRequest(start, end, out_dir=tmp_path / "out")
    with capture_logs() as logs:
        report = asyncio.run(run_backtest(settings, request))
    said = (
        f"{BTC}: its candles miss 3 days from 2025-10-06 00:00 to 2025-10-09 00:00: no entry on "
        "its signals until 2025-10-15 07:00, when 150 hourly bars after the gap have closed"
    )
    assert len([line for line in report.missing_inputs if line.startswith(said)]) == 1
    assert len([e for e in logs if e["event"] == "gap_warmup"]) == 1
