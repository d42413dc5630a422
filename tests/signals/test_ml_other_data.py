"""Training on market data other than ours (docs/BAD_INPUTS.md, "Model files and training"),
from an outside-style probe: a history too short to validate anything, a symbol whose prices do
not move, a symbol whose recording ends early or has no funding rates, a history shorter than
`training_days`, one walk-forward block. Nothing trained on too little is published; what the
data lacks is said in the report; no NaN reaches the report or the manifest."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import warnings
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest
from child_env import child_env
from loopback import LoopbackBinance
from loopback.fixtures import clock_into_bar, loopback_settings
from loopback.server import loopback_api_urls
from ml_fixtures import (  # noqa: F401 (trained_fixture is the fixture `trained`)
    TINY,
    TRAINED_AT,
    copy_data_dir,
    settings_for,
    trained_fixture,
)
from structlog.testing import capture_logs

from quantum_trader.app import open_runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.config import MarketSettings
from quantum_trader.domain import Bars
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.live_universe import UniverseChange
from quantum_trader.signals.coverage import history_h
from quantum_trader.signals.labels import ExitRules
from quantum_trader.signals.loading import load_ensemble
from quantum_trader.signals.model_set import current_set
from quantum_trader.signals.panel import load_panel
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import SignalsSettings
from quantum_trader.signals.training import REPORT_FILE, TrainingResult, train_models

SAMPLE = bundled_sample_dir()
BTC, ETH, SOL, FLAT = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "FLAT/USDT:USDT"
TREES = TINY.model_copy(update={"models": ("xgboost", "lightgbm"), "training_end": None})


def file_of(symbol: str, kind: str) -> str:
    return f"{symbol.split('/')[0]}_USDT_USDT-1h-{kind}.feather"


def copy_hourly(
    out: Path,
    symbol: str,
    start: datetime,
    end: datetime,
    funding: bool = True,
    as_symbol: str | None = None,
) -> None:
    """The sample's hourly candles (and funding) of `symbol` in [start, end) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for kind in ("futures", "funding_rate") if funding else ("futures",):
        table = feather.read_table(SAMPLE / file_of(symbol, kind))
        dates = table.column("date")
        bounds = (pa.scalar(start, dates.type), pa.scalar(end, dates.type))
        keep = pc.and_(pc.greater_equal(dates, bounds[0]), pc.less(dates, bounds[1]))
        feather.write_feather(table.filter(keep), out / file_of(as_symbol or symbol, kind))


def flatten(out: Path, symbol: str) -> None:
    """Make `symbol`'s candles in `out` a market that does not move: one price, no volume."""
    path = out / file_of(symbol, "futures")
    table = feather.read_table(path)
    n = table.num_rows
    for name, value in (("open", 1.2345), ("high", 1.2345), ("low", 1.2345), ("close", 1.2345)):
        table = table.set_column(table.column_names.index(name), name, pa.array(np.full(n, value)))
    table = table.set_column(table.column_names.index("volume"), "volume", pa.array(np.zeros(n)))
    feather.write_feather(table, path)


def run_train(data_dir: Path, symbols: str, **ensemble: str) -> subprocess.CompletedProcess[str]:
    env = {
        **child_env(),
        "QT_DATA_DIR": str(data_dir),
        "QT_MARKET__SYMBOLS": symbols,
        "QT_ENSEMBLE__MODELS": "xgboost,lightgbm",
        "QT_ENSEMBLE__TREE_ROUNDS": "10",
        "QT_ENSEMBLE__TORCH_THREADS": "1",
        "QT_ENSEMBLE__WALK_FORWARD_FOLDS": "3",
        **{f"QT_ENSEMBLE__{k.upper()}": v for k, v in ensemble.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", "train"],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
        timeout=300,
        check=False,
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    assert "Warning" not in stderr  # no numpy RuntimeWarning on prices that do not move
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    return line


def train(data_dir: Path, market: Path, symbols: tuple[str, ...], **update: Any) -> TrainingResult:
    settings = settings_for(data_dir, ensemble=TREES.model_copy(update=update))
    settings = settings.model_copy(update={"market": MarketSettings(symbols=symbols)})
    return train_models(settings, market, symbols, data_dir / "models", TRAINED_AT)


def strict_json(path: Path) -> Any:
    """The file as JSON, refusing NaN and infinities (not JSON; `jq` rejects them)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.mark.slow
def test_train_on_too_short_a_history_publishes_nothing_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    """Ten days of one symbol: 50 labelled hours, no walk-forward block with rows to learn from
    (was: exit 0, a set published whose calibration came from no row at all and whose
    manifest held NaN, "in use")."""
    data = tmp_path / "data"
    copy_hourly(
        data / "market", BTC, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 11, tzinfo=UTC)
    )
    done = run_train(data, BTC, training_days="30")
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line.startswith("error: too little data to train and validate: 50 labelled")
    assert "the first of 3 walk-forward blocks would learn from 0 rows (at least 50)" in line
    assert "import a longer history (the data begins at 2025-06-01 00:00)" in line
    assert line.endswith("nothing was published")
    assert current_set(data / "models") is None
    assert not list((data / "models").glob("*"))


@pytest.mark.slow
def test_a_market_that_never_moves_is_refused_by_name_without_warnings(tmp_path: Path) -> None:
    """A symbol whose close is constant and volume zero for months: no feature is defined (was:
    numpy RuntimeWarnings on stderr, then `0 hours of labelled data are too few for 3
    walk-forward folds`, which named neither the symbol nor the reason)."""
    data = tmp_path / "data"
    market = data / "market"
    copy_hourly(
        market,
        BTC,
        datetime(2025, 6, 1, tzinfo=UTC),
        datetime(2025, 8, 1, tzinfo=UTC),
        as_symbol=FLAT,
    )
    flatten(market, FLAT)
    done = run_train(data, FLAT)
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line == (
        "error: no hour to train on: FLAT/USDT:USDT: its features are never defined: its prices "
        "or volume do not move (a constant close has an ATR of 0 and no returns); import more "
        "history or train on other symbols (market.symbols); nothing was published"
    )
    assert current_set(data / "models") is None


def test_what_the_data_lacks_is_noted_in_the_report(tmp_path: Path) -> None:
    """BTC as recorded; ETH without funding and ending three weeks early; FLAT never moving;
    `training_days` longer than the history: each is a note of the report (was: trained
    without a word: the window silently ended at ETH's last bar, FLAT was listed among the
    symbols trained on, and numpy warned about dividing by zero)."""
    market = tmp_path / "market"
    start = datetime(2025, 7, 1, tzinfo=UTC)
    copy_hourly(market, BTC, start, datetime(2025, 9, 1, tzinfo=UTC))
    copy_hourly(market, ETH, start, datetime(2025, 8, 10, tzinfo=UTC), funding=False)
    copy_hourly(market, BTC, start, datetime(2025, 9, 1, tzinfo=UTC), as_symbol=FLAT)
    flatten(market, FLAT)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = train(tmp_path / "data", market, (BTC, ETH, FLAT), training_days=60)
    notes = result.report.notes
    assert notes[0] == (
        "ETH/USDT:USDT's hourly bars end at 2025-08-09 23:00: training ends there for every "
        "symbol, though other symbols' go on to 2025-08-31 23:00; bring ETH/USDT:USDT's data up "
        "to date or leave it out of market.symbols"
    )
    assert notes[1].startswith("ETH/USDT:USDT: no funding rates recorded: its labels are charged")
    assert notes[2].startswith("FLAT/USDT:USDT: its features are never defined")
    assert notes[2].endswith(": left out of training")
    assert notes[3].startswith(
        "the labelled rows cover 32.4 of the 60 days of ensemble.training_days "
        "(from 2025-07-08 13:00): the data begins at 2025-07-01 00:00"
    )
    assert len(notes) == 4
    written = (result.set_dir / REPORT_FILE).read_text(encoding="utf-8")
    for note in notes:
        assert f"- note: {note}" in written
    # The set records the symbols it learned from, not FLAT: a run on FLAT says it was not.
    assert strict_json(result.set_dir / "manifest.json")["symbols"] == [BTC, ETH]


def test_one_walk_forward_block_leaves_no_nan_in_the_report_or_the_manifest(
    tmp_path: Path,
) -> None:
    """`walk_forward_folds = 1` (allowed: the block only calibrates) scores nothing out of
    sample (was: `nan%` and `nan` in VALIDATION.md, "blocks 2..1", and NaN — not JSON — in
    manifest.json)."""
    result = train(tmp_path / "data", SAMPLE, (BTC, ETH), walk_forward_folds=1,
                   training_end=datetime(2025, 11, 20, tzinfo=UTC))  # fmt: skip
    written = (result.set_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert "nan" not in written.lower()
    assert "- out of sample: nothing: the one walk-forward block only calibrates" in written
    manifest = strict_json(result.set_dir / "manifest.json")
    for entry in manifest["models"]:
        assert entry["metrics"]["trades"] == 0.0
        assert entry["metrics"]["mean_r"] is None
        assert all(v is None or math.isfinite(v) for v in entry["metrics"].values())
    assert current_set(tmp_path / "data" / "models") == result.set_dir


def test_too_short_a_history_raises_before_anything_is_published(tmp_path: Path) -> None:
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 14, tzinfo=UTC))
    with pytest.raises(MarketDataError, match=r"would learn from \d+ rows \(at least 50\)"):
        train(tmp_path / "data", market, (BTC,), training_days=30)
    assert current_set(tmp_path / "data" / "models") is None


@pytest.mark.parametrize(
    ("replay_start", "warned"),
    [(None, True), (datetime(2025, 11, 21, tzinfo=UTC), False)],
    ids=["replay-over-the-training-window", "replay-after-it"],
)
async def test_a_paper_replay_over_the_models_training_window_says_it_is_in_sample(
    trained: tuple[Path, TrainingResult],
    tmp_path: Path,
    replay_start: datetime | None,
    warned: bool,
) -> None:
    """`train` then `run` on the same recorded market: the paper replay starts months before
    the models' training window ends, so most of its signals come from models that learned
    from those very hours (was: traded without a word; a backtest of that window is refused)."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    settings = settings_for(data_dir, source="ensemble")
    market = settings.market.model_copy(update={"replay_start": replay_start})
    async with AsyncExitStack() as stack:
        with capture_logs() as logs:
            await open_runtime(
                settings.model_copy(update={"market": market}), stack, ManualClock, asyncio.Event()
            )
    said = [e["detail"] for e in logs if e["event"] == "replay_in_sample"]
    if not warned:
        assert said == []
        return
    (detail,) = said
    assert detail.startswith("the replay 2025-09-14T09:00:00+00:00 .. 2025-12-01T00:00:00+00:00")
    assert "overlaps the training window 2025-10-3" in detail
    assert "their signals there are in-sample" in detail
    assert "retrain with ensemble.training_end = 2025-09-14 or earlier" in detail
    assert "start the replay at 2025-11-2" in detail


@pytest.mark.parametrize(
    ("symbols", "untrained"), [((BTC, SOL), [SOL]), ((BTC, ETH), [])], ids=["SOL", "trained"]
)
async def test_a_paper_run_on_symbols_the_models_did_not_learn_from_says_so(
    trained: tuple[Path, TrainingResult],
    tmp_path: Path,
    symbols: tuple[str, ...],
    untrained: list[str],
) -> None:
    """The models learned from BTC and ETH; a daemon started on SOL with them trades it (a
    user may try how they transfer) but says so once at the start (was: not a word)."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    settings = settings_for(data_dir, source="ensemble")
    market = settings.market.model_copy(
        update={"symbols": symbols, "replay_start": datetime(2025, 11, 21, tzinfo=UTC)}
    )
    async with AsyncExitStack() as stack:
        with capture_logs() as logs:
            runtime = await open_runtime(
                settings.model_copy(update={"market": market}), stack, ManualClock, asyncio.Event()
            )
    said = [e for e in logs if e["event"] == "symbols_not_trained_on"]
    if not untrained:
        assert said == []
        return
    (warning,) = said
    assert warning["log_level"] == "warning"
    assert (warning["symbols"], warning["trained_on"]) == (untrained, [BTC, ETH])
    assert "`quantum-trader train`" in warning["hint"]
    assert warning["detail"].startswith(f"the models in {data_dir / 'models'} were not trained on")
    assert runtime.settings.signals.source == "ensemble"  # started, not refused


async def test_a_testnet_start_on_symbols_the_models_did_not_learn_from_says_so(
    loopback: LoopbackBinance, trained: tuple[Path, TrainingResult], tmp_path: Path
) -> None:
    """The same at the start of a testnet/live daemon (its symbols from the exchange)."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    settings = settings_for(data_dir, source="ensemble").model_copy(
        update={
            "exchange": loopback_settings(),
            "market": MarketSettings(symbols=(BTC, SOL), history_bars=300),
        }
    )
    ensemble = load_ensemble(data_dir / "models", settings)
    async with AsyncExitStack() as stack:
        with capture_logs() as logs:
            await open_exchange_runtime(
                settings,
                stack,
                asyncio.Event(),
                clock=clock_into_bar(loopback),
                api_urls=loopback_api_urls(loopback.base_url),
                source=ensemble,
                rate_limit=False,
            )
    (warning,) = [e for e in logs if e["event"] == "symbols_not_trained_on"]
    assert (warning["symbols"], warning["trained_on"]) == ([SOL], [BTC, ETH])


async def test_a_symbol_the_models_did_not_learn_from_joining_the_universe_is_said(
    loopback: LoopbackBinance, trained: tuple[Path, TrainingResult], tmp_path: Path
) -> None:
    """A testnet/live universe is re-resolved while the daemon runs: a symbol joining after
    the start's check is said too (the listeners the runtime registers hear each change)."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    settings = settings_for(data_dir, source="ensemble").model_copy(
        update={
            "exchange": loopback_settings(),
            "market": MarketSettings(symbols=(BTC,), history_bars=300),
        }
    )
    ensemble = load_ensemble(data_dir / "models", settings)
    now = utc_from_ms(loopback.state.now_ms + 10_000)
    async with AsyncExitStack() as stack:
        runtime = await open_exchange_runtime(
            settings,
            stack,
            asyncio.Event(),
            clock=ManualClock(now),
            api_urls=loopback_api_urls(loopback.base_url),
            source=ensemble,
            rate_limit=False,
        )
        assert runtime.universe is not None
        with capture_logs() as logs:
            for change in (
                UniverseChange(now, (ETH,), (), {}),  # learned from: nothing to say
                UniverseChange(now, (SOL,), (BTC,), {}),
            ):
                for listener in runtime.universe.listeners:
                    listener(change)
    said = [e for e in logs if e["event"] == "symbols_not_trained_on"]
    assert [(e["symbols"], e["trained_on"]) for e in said] == [([SOL], [BTC, ETH])]


def halted(bars: Bars, from_row: int) -> Bars:
    """`bars` whose market stops trading at `from_row`: one price, no volume, to the end."""
    price = float(bars.close[from_row - 1])

    def still(column: np.ndarray[Any, Any], value: float) -> np.ndarray[Any, Any]:
        return np.concatenate([column[:from_row], np.full(len(bars) - from_row, value)])

    return Bars(
        bars.symbol,
        bars.timeframe_ms,
        bars.time_ms,
        still(bars.open, price),
        still(bars.high, price),
        still(bars.low, price),
        still(bars.close, price),
        still(bars.volume, 0.0),
    )


def test_no_model_votes_on_an_hour_in_which_nothing_traded(
    trained: tuple[Path, TrainingResult],
) -> None:
    """A market that stops trading (the recording flat, zero volume, for two days): the tree
    models abstain (their volume features are undefined), and so must the forecasters (was:
    they voted on, the two of them a quorum: a backtest opened shorts in a dead market, sized
    on an ATR near 0, and lost 54 R when it reopened with a gap)."""
    settings = settings_for(trained[0], ensemble=TINY.model_copy(update={"min_expected_r": -1.0}))
    ensemble = load_ensemble(trained[0] / "models", settings)
    assert ensemble is not None
    store = CandleStore(SAMPLE)
    bars = store.load_bars(BTC, "5m").slice(0, 4800)
    stop = 4800 - 2 * 288  # the last two days traded nothing
    (series,) = ensemble.evaluate({BTC: halted(bars, stop)}).values()
    quiet = slice(stop + 12, None)  # from the first hour that closed without a trade
    assert (series.action[quiet] == 0).all()
    for model, (votes, _confidence) in series.votes.items():
        assert (votes[quiet] == 0).all(), model
        assert (votes[: stop - 12] != 0).any(), model  # they do vote while the market trades


def test_a_training_end_before_the_data_says_where_the_data_begins(tmp_path: Path) -> None:
    """(was: `BTC/USDT:USDT: no hourly bar closed by ensemble.training_end`, neither time said)"""
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC))
    with pytest.raises(MarketDataError) as refused:
        train(tmp_path / "data", market, (BTC,), training_end=datetime(2025, 4, 1, tzinfo=UTC))
    assert str(refused.value) == (
        "BTC/USDT:USDT: no hourly bar closed by ensemble.training_end (2025-04-01 00:00): its "
        "candles begin at 2025-06-01 00:00; set a later training_end or import older data; "
        "nothing was published"
    )


def test_a_symbol_with_fewer_bars_than_the_horizon_is_left_out_not_a_traceback(
    tmp_path: Path,
) -> None:
    """A symbol listed four hours before the data ends, trained with a forecaster (was:
    `ValueError: window shape cannot be larger than input array shape` from the forecaster's
    targets, a traceback)."""
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    copy_hourly(
        market, ETH, datetime(2025, 8, 31, 20, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)
    )
    result = train(
        tmp_path / "data",
        market,
        (BTC, ETH),
        models=("xgboost", "nhits"),
        forecaster_steps=10,
    )
    assert result.report.notes[-1] == (
        "ETH/USDT:USDT: 4 hourly bars, fewer than the 190 a row needs (181 h of history before "
        "it, 8 h after it): left out of training"
    )
    assert current_set(tmp_path / "data" / "models") == result.set_dir


def test_a_symbol_whose_candles_do_not_fill_an_hour_is_left_out_not_a_traceback(
    tmp_path: Path,
) -> None:
    """Forty minutes of 5 m candles and no hourly file: not one closed hour (was: `IndexError:
    index -1 is out of bounds for axis 0 with size 0`, a traceback)."""
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))
    five = feather.read_table(SAMPLE / "ETH_USDT_USDT-5m-futures.feather")
    dates = five.column("date")
    since = pa.scalar(datetime(2025, 10, 31, 23, 20, tzinfo=UTC), dates.type)
    until = pa.scalar(datetime(2025, 11, 1, tzinfo=UTC), dates.type)
    keep = pc.and_(pc.greater_equal(dates, since), pc.less(dates, until))
    feather.write_feather(five.filter(keep), market / "ETH_USDT_USDT-5m-futures.feather")
    result = train(tmp_path / "data", market, (BTC, ETH))
    assert "ETH/USDT:USDT: its candles do not fill one closed hourly bar: left out of training" in (
        result.report.notes
    )
    with pytest.raises(MarketDataError, match=r"^no hour to train on: ETH/USDT:USDT: its candles"):
        train(tmp_path / "again", market, (ETH,))


def eth_with_five_days_missing(tmp_path: Path) -> tuple[Path, tuple[int, int]]:
    """BTC July–August; ETH the same less 2025-08-01 00:00 to 08-06 00:00: the market dir and
    the gap (the last hour before it, the first after it, ms)."""
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    copy_hourly(market, ETH, datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC))
    after = tmp_path / "after"
    copy_hourly(after, ETH, datetime(2025, 8, 6, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    for kind in ("futures", "funding_rate"):
        both = pa.concat_tables(
            [feather.read_table(d / file_of(ETH, kind)) for d in (market, after)]
        )
        feather.write_feather(both, market / file_of(ETH, kind))
    gap = (int(datetime(2025, 7, 31, 23, tzinfo=UTC).timestamp() * 1000),
           int(datetime(2025, 8, 6, tzinfo=UTC).timestamp() * 1000))  # fmt: skip
    return market, gap


def test_no_training_row_reaches_across_a_gap_in_the_candles_and_the_gap_is_noted(
    tmp_path: Path,
) -> None:
    """ETH's candles miss five days inside the training window. A row's features read the
    181 hours before it, and its labels the trade's hours after it, by position: rows next to
    the gap read hours days apart as one after the other (a trade held through five unrecorded
    days, exited at the first bar after them). Those rows are left out, and a note says so (was:
    trained on them without a word; found by an outside-style probe, 2026-12-04, round two)."""
    market, gap = eth_with_five_days_missing(tmp_path)
    settings = settings_for(
        tmp_path / "data", ensemble=TREES.model_copy(update={"training_days": 60})
    )
    panel = load_panel(
        settings.ensemble, ExitRules.of(settings), RuleAgent(settings.signals), market,
        (BTC, ETH), need_windows=False,
    )  # fmt: skip
    eth = panel.frames[1]
    assert eth.symbol == ETH
    times = eth.hourly.time_ms[eth.rows]
    ends = panel.label_end_ms[panel.time_ms.size - times.size :]
    reaching = (times - history_h(settings.ensemble) * 3_600_000 <= gap[0]) & (ends > gap[1])
    assert not reaching.any()
    assert (times > gap[1]).any()  # the rest is trained on
    assert (times < gap[0]).any()
    [note] = [n for n in panel.notes if "gap" in n]
    assert note.startswith(
        "ETH/USDT:USDT: its candles miss 5 days from 2025-08-01 00:00 to 2025-08-06 00:00"
    )


def test_with_the_rules_proposing_the_side_no_row_reads_their_indicators_across_a_gap(
    tmp_path: Path,
) -> None:
    """Meta-labeling: the rule agent's side at each row is a label input too. With a slow EMA
    of 80 h it reads 240 h (three spans), more than the models' 181: the rows after the gap
    whose side the rules computed from hours before it are left out as well (was: only the
    models' 181 h, so a side from EMAs seeded before a five-day hole was trained on)."""
    market, gap = eth_with_five_days_missing(tmp_path)
    settings = settings_for(
        tmp_path / "data",
        ensemble=TREES.model_copy(update={"training_days": 60, "side_source": "rules"}),
    )
    agent = RuleAgent(SignalsSettings(rules_slow_ema=80))
    assert agent.history_hours == 240 > history_h(settings.ensemble)
    panel = load_panel(
        settings.ensemble, ExitRules.of(settings), agent, market, (BTC, ETH), need_windows=False
    )
    eth = panel.frames[1]
    assert eth.symbol == ETH
    after = eth.hourly.time_ms[eth.rows]
    after = after[after > gap[1]]
    assert after.size  # the rest is trained on
    # by position, a row's history is the hours before it: all of them after the gap
    assert after.min() - agent.history_hours * 3_600_000 >= gap[1]


def test_with_the_rules_proposing_the_side_a_short_symbol_is_told_the_rules_history(
    tmp_path: Path,
) -> None:
    """Meta-labeling with a slow EMA of 80 h: a row needs the rule agent's 240 h behind it,
    and the note for a symbol too short says so (was: the models' 181 h, so a user who added
    history up to that figure still saw the symbol left out)."""
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    copy_hourly(market, ETH, datetime(2025, 8, 24, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    settings = settings_for(
        tmp_path / "data",
        ensemble=TREES.model_copy(update={"training_days": 30, "side_source": "rules"}),
    )
    agent = RuleAgent(SignalsSettings(rules_slow_ema=80))
    panel = load_panel(
        settings.ensemble, ExitRules.of(settings), agent, market, (BTC, ETH), need_windows=False
    )

    assert panel.history_h == agent.history_hours == 240
    assert f"{ETH}: 192 hourly bars, fewer than the 249 a row needs (240 h of history before " \
        "it, 8 h after it): left out of training" in panel.notes  # fmt: skip
