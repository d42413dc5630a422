"""`quantum-trader optimize`: search settings with Optuna over out-of-sample backtests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from quantum_trader.cli import ConfigOption, _parse_day, _settings, app, console
from quantum_trader.cli_backtest import End, Start, Symbols, _symbols
from quantum_trader.clock import LiveClock
from quantum_trader.config import DEFAULT_CONFIG_PATH
from quantum_trader.log import configure_logging
from quantum_trader.record import replace

SpaceFile = Annotated[Path, typer.Option("--space", help="Search space (TOML): docs/OPTIMIZE.md.")]
Trials = Annotated[int, typer.Option(min=1, help="Finished trials the study should hold.")]
Workers = Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")]
Storage = Annotated[
    str | None,
    typer.Option(
        help="Study store: sqlite:///PATH (default data_dir/optimize/studies.db) or "
        "postgresql://USER:PASSWORD@HOST/DB to share the study between machines."
    ),
]
Study = Annotated[str, typer.Option(help="Study name; an existing study resumes.")]
Seed = Annotated[int | None, typer.Option(min=0, help="Sampler seed (reproducible on 1 worker).")]
Out = Annotated[Path, typer.Option(help="Chosen settings (TOML); results JSON beside it.")]
FoldDays = Annotated[int, typer.Option(min=1, help="Days of each fold's block.")]
Folds = Annotated[int, typer.Option(min=1, help="Out-of-sample folds.")]
HoldoutDays = Annotated[
    int, typer.Option(min=1, help="Final days no trial sees, scored once at the end.")
]
Objective = Annotated[
    str, typer.Option(help="sharpe | return_over_drawdown (single objective, TPE).")
]
MinTrades = Annotated[
    int,
    typer.Option(
        min=0,
        help="Fewest trades a trial's out-of-sample blocks must hold together to be eligible "
        "as best (0: any trial).",
    ),
]
Multi = Annotated[
    bool, typer.Option("--multi", help="Multi-objective (NSGA-II): return % vs max drawdown %.")
]


@app.command()
def optimize(
    space: SpaceFile,
    trials: Trials,
    config: ConfigOption = None,
    workers: Workers = 1,
    storage: Storage = None,
    study: Study = "optimize",
    seed: Seed = None,
    out: Out = Path("optimize/best.toml"),
    symbols: Symbols = None,
    start: Start = None,
    end: End = None,
    fold_days: FoldDays = 14,
    folds: Folds = 3,
    holdout_days: HoldoutDays = 14,
    objective: Objective = "sharpe",
    multi: Multi = False,
    min_trades: MinTrades = 1,
) -> None:
    """Search the settings in --space for the best out-of-sample walk-forward score."""
    from quantum_trader.errors import ConfigurationError
    from quantum_trader.optimize.objective import Score
    from quantum_trader.optimize.results import check_out, print_results, write_results
    from quantum_trader.optimize.runner import OptimizeRequest, run_optimize
    from quantum_trader.optimize.space import load_space

    if objective not in tuple(Score):
        raise ConfigurationError(
            [f"--objective: expected one of {', '.join(Score)}, got {objective!r}"]
        )
    if not study.strip():  # the name a rerun resumes by
        raise ConfigurationError([f"--study {study!r}: name the study, e.g. --study sweep-1"])
    settings = _settings(config)
    load_space(space, settings)  # a bad space file: one line per problem before any import
    config = config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)
    check_out(out, {"--config": config, "--space": space})  # before the study, not after it
    if settings.log.level != "DEBUG":  # thousands of backtests: their lines are not the output
        configure_logging(settings.log.format, "ERROR")
    request = OptimizeRequest(
        space=space,
        trials=trials,
        workers=_workers(workers),
        storage=storage,
        study=study,
        seed=seed,
        out=out,
        config=config,
        symbols=_symbols(symbols),
        start=_parse_day("--start", start),
        end=_parse_day("--end", end),
        fold_days=fold_days,
        folds=folds,
        holdout_days=holdout_days,
        score=Score(objective),
        multi=multi,
        progress_bar=sys.stderr.isatty(),
        min_trades=min_trades,
    )
    _optuna_logs(request.progress_bar)
    _remove_stale_scratch()
    results = run_optimize(settings, request, _Progress())
    written_at = LiveClock().now().isoformat(timespec="seconds")
    report = write_results(replace(results, written_at=written_at), out, request.config)
    print_results(console, results, out, report)


def _workers(asked: int) -> int:
    """`asked`, capped at the cores; a line on stderr for the cap and for a memory too small."""
    import psutil

    from quantum_trader.optimize.study import cap_workers, memory_warning, usable_cores

    workers, capped = cap_workers(asked, usable_cores())
    tight = memory_warning(workers, psutil.virtual_memory().available)
    for line in (capped, tight):
        if line is not None:
            print(line, file=sys.stderr, flush=True)
    return workers


def _remove_stale_scratch() -> None:
    """Remove what runs killed before their cleanup left in the temporary directory."""
    from quantum_trader.optimize.scratch import remove_stale

    removed = remove_stale()
    if removed.count:
        print(removed.describe(), file=sys.stderr, flush=True)


def _optuna_logs(progress_bar: bool) -> None:
    """On a terminal the progress bar; elsewhere Optuna's one log line per trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING if progress_bar else optuna.logging.INFO)


class _Progress:
    """Several workers: one line on stderr each time the finished count changes."""

    def __init__(self) -> None:
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if done != self._last:
            self._last = done
            print(f"optimize: {done} of {total} trials finished", file=sys.stderr, flush=True)
