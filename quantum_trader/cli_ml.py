"""`quantum-trader train`: train the ensemble's models on the recorded market, publish them as one
model set under data_dir/models, and print the out-of-sample validation report.

SIGTERM or SIGINT (or SIGHUP, a closed terminal, unless `nohup` ignores it) stops training
cleanly: nothing is published, the set in use stays in use, and the command exits 1 with one
line saying so. The daemon and the backtest pick a new set up on their next start
(signals.source unset).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from quantum_trader.cli import ConfigOption, _settings, app, console, log_market_data
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.source import resolve_market_data
from quantum_trader.ops.data_dir import prepare_data_dir
from quantum_trader.report.outputs import sole_writer
from quantum_trader.signals.manifest import ModelSetError
from quantum_trader.signals.model_set import CURRENT_FILE, current_set, models_dir_in
from quantum_trader.signals.stopping import TRAINING_STOP, StopRequested
from quantum_trader.stop_signals import on_stop_signals

if TYPE_CHECKING:  # at run time only `train` imports training and its model libraries
    from quantum_trader.signals.training import TrainingResult

__all__ = ["models_dir", "train", "train_ensemble"]


def models_dir(settings: Settings) -> Path:
    """Where `train` publishes model sets and where the daemon loads the current one from."""
    return models_dir_in(settings.data_dir)


def train_ensemble(settings: Settings, out: Console, now: datetime) -> TrainingResult:
    """Train `settings.ensemble.models` on the market data; publish the set and its report.

    `now` is the set's `trained_at` (UTC). Forecasters that cannot be trained (no PyTorch) are
    skipped and named in the report; the tree models are trained regardless. A symbol without
    candles is a ConfigurationError (exit 2), as in `backtest`.
    """
    data = resolve_market_data(settings)
    # An unknown symbol is a usage error, as in backtest (exit 2), said before the model
    # libraries load. Training reads a symbol's 1h candles, else its 5m ones (signals/panel.py).
    data.require_symbols(settings.market.symbols, "5m", "1h")
    from quantum_trader.signals.training import REPORT_FILE, train_models  # model libraries

    source_dir = data.directory
    target = models_dir(settings)
    out.print(
        f"Training {', '.join(settings.ensemble.models)} on {len(settings.market.symbols)} "
        f"symbols from {source_dir} ({settings.ensemble.training_days} days) into {target}"
    )
    with Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("loading data", total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        result = train_models(settings, source_dir, settings.market.symbols, target, now, progress)
    from rich.markdown import Markdown  # markdown-it (≈ 20 ms) only where a report is printed

    out.print(Markdown(result.report.to_markdown()))
    for name, reason in result.report.skipped.items():
        out.print(f"[yellow]skipped {name}[/yellow]: {reason}")
    for note in result.report.notes:
        out.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False)
    if result.swept:
        out.print(f"removed half-written sets of a stopped run: {', '.join(result.swept)}")
    out.print(f"Model set {result.set_dir.name} in use; report {result.set_dir / REPORT_FILE}")
    return result


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the stop signals (stop_signals.py) into a stop training carries out at its next
    safe point (StopRequested; signals.stopping says why not at once). Main thread only."""
    TRAINING_STOP.clear()
    try:
        with on_stop_signals(lambda signum: TRAINING_STOP.request(signum.name)):
            yield
    finally:
        TRAINING_STOP.clear()


def one_train_at_a_time(settings: Settings) -> AbstractContextManager[None]:
    """Hold the models directory as a backtest holds its --out (`.models.lock` beside it): a
    second `train` on the data directory would sweep the first's set as it is written (its
    `.partial-*`, taken for a stopped run's) and both would replace CURRENT."""
    target = models_dir(settings)

    def refused(pid: str) -> str:
        return (
            f"{target}: another train (PID {pid}) is writing model sets there; wait for it "
            "to finish (or stop it), or point QT_DATA_DIR at another data directory"
        )

    return sole_writer(target, str(target), refused)


@app.command()
def train(config: ConfigOption = None) -> None:
    """Train the ensemble's models, publish them as a model set, print the validation report."""
    settings = _settings(config)
    # Checked before minutes of training, not when the first model set is written.
    prepare_data_dir(models_dir(settings), "training writes its model sets there")
    refuse_a_pointer_that_is_no_file(models_dir(settings))
    log_market_data(settings)
    before = _current_name(settings)
    try:
        with one_train_at_a_time(settings), stop_on_signals():
            train_ensemble(settings, console, LiveClock().now())
    except StopRequested as stop:
        after = _current_name(settings)
        if after != before:
            print(f"stopped by {stop} after model set {after} was published", file=sys.stderr)
            raise typer.Exit(0) from None
        kept = f"model set {before} stays in use" if before else "no model set was published"
        print(f"error: training stopped by {stop} before it finished; {kept}", file=sys.stderr)
        raise typer.Exit(1) from None


def refuse_a_pointer_that_is_no_file(target: Path) -> None:
    """ConfigurationError when CURRENT (or the CURRENT.tmp renamed onto it) is there but not a
    file: publishing would fail after the whole training, leaving the new set behind."""
    for name in (CURRENT_FILE, f"{CURRENT_FILE}.tmp"):
        path = target / name
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise ConfigurationError(
                [
                    f"{path} is {kind}; train writes there the name of the set it publishes: "
                    "move it aside, then train again; nothing was trained"
                ]
            )


def _current_name(settings: Settings) -> str | None:
    try:
        current = current_set(models_dir(settings))
    except ModelSetError:
        return None
    return None if current is None else current.name
