"""`quantum-trader train`: train the ensemble's models on the recorded market into
data_dir/models, with a progress bar, and print and save the walk-forward validation report.

The daemon and the backtest pick the models up on their next start (signals.source unset).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from quantum_trader.cli import ConfigOption, _settings, app, console, log_market_data
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.market.source import resolve_market_data
from quantum_trader.signals.training_report import TrainingReport

REPORT_FILE = "VALIDATION.md"


def models_dir(settings: Settings) -> Path:
    """Where `train` writes the artifacts and where the daemon loads them from."""
    return settings.data_dir / "models"


def train_ensemble(settings: Settings, out: Console, now: datetime) -> TrainingReport:
    """Train `settings.ensemble.models` on the market data, save them and the report.

    `now` is the artifacts' `trained_at` (UTC). Forecasters that cannot be trained (no
    PyTorch) are skipped and named in the report; the tree models are trained regardless.
    """
    from quantum_trader.signals.training import train_models  # heavy: model libraries

    source_dir = resolve_market_data(settings).directory
    target = models_dir(settings)
    out.print(
        f"Training {', '.join(settings.ensemble.models)} on {len(settings.market.symbols)} "
        f"symbols from {source_dir} ({settings.ensemble.training_days} days) into {target}"
    )
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("loading data", total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        report = train_models(
            settings.ensemble, source_dir, settings.market.symbols, target, now, progress
        )
    markdown = report.to_markdown()
    (target / REPORT_FILE).write_text(markdown, encoding="utf-8")
    out.print(Markdown(markdown))
    for name, reason in report.skipped.items():
        out.print(f"[yellow]skipped {name}[/yellow]: {reason}")
    out.print(f"Validation report written to {target / REPORT_FILE}")
    return report


@app.command()
def train(config: ConfigOption = None) -> None:
    """Train the ensemble's models and print their walk-forward validation report."""
    settings = _settings(config)
    log_market_data(settings)
    train_ensemble(settings, console, LiveClock().now())
