"""The study's results: the best settings, their folds (in-sample, out-of-sample, the gap),
their one score on the holdout, and the files: results JSON and the chosen settings as TOML.

Honesty of the numbers: each fold's out-of-sample score comes from a block no setting was
fitted on *within that trial*, but the study chose the best trial by those same scores, so
their mean is optimistic. The holdout block was never read while choosing: its score, taken
once for the chosen settings, is the estimate to trust; the config's own settings are scored on
it too, for comparison.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import tomllib
import typing
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import tomli_w
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table

from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError, UsageError
from quantum_trader.optimize.eligibility import Scored, best, pareto_front, scored
from quantum_trader.optimize.objective import TOO_FEW_TRADES, Evaluation, Stop, run_block
from quantum_trader.optimize.space import apply
from quantum_trader.optimize.study import StudyRequest
from quantum_trader.settings_base import redact_url


@dataclass(slots=True)
class StudyResults:
    study: str
    storage: str
    objective: str
    trials: dict[str, int]
    best_trial: int
    best_params: dict[str, Any]
    best_values: list[float]
    folds: list[dict[str, Any]]
    mean_in_sample: float
    mean_out_of_sample: float
    mean_gap: float
    holdout: dict[str, Any]
    holdout_baseline: dict[str, Any]
    layout: dict[str, Any]
    symbols: list[str]
    pareto_front: list[dict[str, Any]] = field(default_factory=list)
    pruned: list[dict[str, Any]] = field(default_factory=list)
    written_at: str = ""  # stamped by the command when it writes the file (wall clock)
    # What the blocks' `score` figures are; with --multi the study chose by other figures.
    score: str = "score"
    # Trials that ran every fold with fewer out-of-sample trades than this: not eligible.
    min_trades: int = 0
    too_few_trades: list[dict[str, int]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def collect(
    study: optuna.Study, evaluation: Evaluation, request: StudyRequest, stop: Stop | None = None
) -> StudyResults:
    """Pick the best finished trial, score it (and the base settings) once on the holdout;
    BacktestInterrupted once `stop` is set."""
    everything = study.get_trials(deepcopy=False)
    candidates = scored(everything, request.multi)
    eligible = [s for s in candidates if s.trades >= evaluation.min_trades]
    short = [s for s in candidates if s.trades < evaluation.min_trades]
    if not candidates:
        raise UsageError(_none_completed(study.study_name, everything))
    chosen = _best(study.study_name, eligible, short, evaluation.min_trades, request.multi)
    best = chosen.trial
    folds = best.user_attrs["folds"]
    settings = apply(evaluation.base, best.params)
    holdout_args = (evaluation.markets.holdout, evaluation.layout.holdout, evaluation.score)
    holdout = run_block(settings, *holdout_args, evaluation.scratch / "holdout", stop)
    baseline = run_block(evaluation.base, *holdout_args, evaluation.scratch / "baseline", stop)
    states = [t.state for t in everything]
    return StudyResults(
        study=request.name,
        storage=redact_url(request.storage),
        objective=_objective_name(evaluation),
        trials={s.name.lower(): states.count(s) for s in TrialState if states.count(s)},
        best_trial=best.number,
        best_params=dict(best.params),
        best_values=list(chosen.values),
        folds=folds,
        mean_in_sample=statistics.fmean(f["in_sample"]["score"] for f in folds),
        mean_out_of_sample=statistics.fmean(f["out_of_sample"]["score"] for f in folds),
        mean_gap=statistics.fmean(f["gap"] for f in folds),
        holdout=holdout.describe(),
        holdout_baseline=baseline.describe(),
        layout=evaluation.layout.describe(),
        symbols=list(evaluation.base.market.symbols),
        pareto_front=_front(eligible) if request.multi else [],
        pruned=_pruned(everything),
        score=str(evaluation.score),
        min_trades=evaluation.min_trades,
        too_few_trades=[{"trial": s.trial.number, "trades": s.trades} for s in short],
    )


def _best(
    study: str, eligible: list[Scored], short: list[Scored], min_trades: int, multi: bool
) -> Scored:
    """The trial to score on the holdout; UsageError when none is eligible, saying why."""
    if eligible:
        return best(eligible, multi)
    noun = "trade" if min_trades == 1 else "trades"
    raise UsageError(
        f"--study {study}: no trial is eligible as best: of the trials that ran every "
        f"fold, none made at least {min_trades} {noun} in its out-of-sample blocks "
        f"(--min-trades; {len(short)} set aside); widen the space, lengthen the blocks "
        "(--fold-days, --folds) or lower --min-trades"
    )


def _none_completed(study: str, trials: list[FrozenTrial]) -> str:
    """Why no trial ran every fold. When the settings drawn broke a rule between settings,
    the rule that refused most of them, as the first such trial met it: a space whose range
    always breaks one (a setting drawn below another's default it must not be below) would
    otherwise only say "see the log"."""
    refused = [t for t in trials if t.user_attrs.get("refused")]
    if not refused:
        return (
            f"--study {study}: no trial completed (all pruned or failed: see the log); "
            "widen the space or check the settings' rules it names"
        )
    by_rule = [(_rule(str(t.user_attrs["refused"])), t) for t in refused]
    rule, count = Counter(r for r, _ in by_rule).most_common(1)[0]
    first = next(t for r, t in by_rule if r == rule)
    return (
        f"--study {study}: no trial completed: {len(refused)} of {len(trials)} drew settings "
        f"that break a rule between settings, {count} of them this one (trial "
        f"{first.number}): {first.user_attrs['refused']}; change the space so that its draws "
        "keep the rule, or set the other setting in --config"
    )


def _rule(refusal: str) -> str:
    """A refusal without the values drawn: the setting it names and the rule's words."""
    return refusal.split(" (", 1)[0].split("; got", 1)[0]


def _front(eligible: list[Scored]) -> list[dict[str, Any]]:
    return [
        {"trial": s.trial.number, "return_pct": s.values[0], "max_drawdown_pct": s.values[1]}
        for s in pareto_front(eligible)
    ]


def _pruned(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Each pruned trial: after which fold, which rule refused its settings, or how few trades
    it made."""
    rows = []
    for trial in trials:
        if trial.state is not TrialState.PRUNED:
            continue
        refused = trial.user_attrs.get("refused")
        too_few = trial.user_attrs.get(TOO_FEW_TRADES)
        if refused:
            reason = f"refused: {refused}"
        elif too_few is not None:
            reason = f"too few trades: {too_few} in the out-of-sample blocks"
        else:
            reason = f"pruned after fold {trial.last_step}"
        rows.append({"trial": trial.number, "reason": reason})
    return rows


def _objective_name(evaluation: Evaluation) -> str:
    if evaluation.multi:
        return "NSGA-II: maximize mean OOS return %, minimize mean OOS max drawdown %"
    return f"TPE: maximize mean OOS {evaluation.score}"


def check_out(out: Path, inputs: Mapping[str, Path | None] | None = None) -> None:
    """ConfigurationError unless `write_results` can write `out` and the JSON beside it, and
    neither is one of the command's `inputs` (option → file): checked before the study, which
    may take hours. Its directory is created."""
    if not out.name or out.is_dir():
        raise ConfigurationError([f"--out {out}: name a file (the chosen settings, TOML)"])
    beside = _results_path(out)
    if beside.exists() and not beside.is_file():
        raise ConfigurationError(
            [
                f"--out {out}: the results are written beside it to {beside}, which is a "
                "directory; move it aside or choose another --out"
            ]
        )
    for option, path in (inputs or {}).items():
        written = (out, _results_path(out))
        if path is not None and path.is_file() and any(_same(path, w) for w in written):
            raise ConfigurationError(
                [
                    f"--out {out}: is the {option} file; the chosen settings would replace it: "
                    "choose another file"
                ]
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.probe-")
    except OSError as error:
        why = error.strerror or str(error)
        blocking = next((p for p in out.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            why = f"{blocking} is a file"
        raise ConfigurationError(
            [f"--out {out}: cannot write there ({why}); choose a file in a writable directory"]
        ) from None
    os.close(handle)
    os.unlink(probe)


def write_results(results: StudyResults, out: Path, config: Path | None) -> Path:
    """Write the chosen settings to `out` (TOML) and the results beside it (JSON), each
    through a temporary file renamed into place; return the JSON's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    document = _config_document(config)
    for path, value in results.best_params.items():
        *sections, name = path.split(".")
        node = document
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    signals = document.setdefault("signals", {})
    signals["source"] = "rules"  # what the study scored
    market = document.setdefault("market", {})
    market["symbols"] = results.symbols
    header = (
        f"# Chosen by `quantum-trader optimize` (study {results.study}, trial "
        f"{results.best_trial}, {results.objective}).\n"
        f"# Holdout {results.holdout['start'][:10]} .. {results.holdout['end'][:10]} "
        f"(never seen while choosing): score {results.holdout['score']:.4f}, return "
        f"{results.holdout['return_pct']:.2f} %, max drawdown "
        f"{results.holdout['max_drawdown_pct']:.2f} %.\n"
    )
    _atomic_write(out, header + tomli_w.dumps(document))
    report = _results_path(out)
    _atomic_write(report, results.to_json())
    return report


def _results_path(out: Path) -> Path:
    return out.with_name(out.stem + ".results.json")


def _same(path: Path, other: Path) -> bool:
    return other.exists() and path.samefile(other)


def _config_document(config: Path | None) -> dict[str, Any]:
    """The TOML the settings were read from, without its secrets (API keys, tokens: they
    belong in the environment, and this program writes none to disk); not the environment."""
    if config is None or not config.is_file():
        return {}
    with config.open("rb") as handle:
        document = tomllib.load(handle)
    _drop_secrets(document, Settings)
    return document


def _drop_secrets(node: dict[str, Any], model: type[BaseModel]) -> None:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if name not in node:
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(node[name], dict):
                _drop_secrets(node[name], annotation)
        elif SecretStr in typing.get_args(annotation) or annotation is SecretStr:
            del node[name]


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # never a half-written file left beside it
        raise


def print_results(console: Console, results: StudyResults, out: Path, report: Path) -> None:
    """The table on stdout: best settings, folds, gap, holdout."""
    params = Table(title=f"Best of study {results.study}: trial {results.best_trial}")
    params.add_column("setting")
    params.add_column("value", justify="right")
    for path, value in sorted(results.best_params.items()):
        params.add_row(path, _number(value))
    console.print(params)
    folds = Table(title=f"{results.objective} ({', '.join(results.symbols)})")
    name = results.score
    folds.caption = f"IS, OOS, gap: each block's {name}"
    for column in ("fold", "in-sample", "IS", "out-of-sample", "OOS", "gap IS−OOS"):
        folds.add_column(column, justify="right", no_wrap=True)
    for fold in results.folds:
        ins, oos = fold["in_sample"], fold["out_of_sample"]
        folds.add_row(
            str(fold["fold"]),
            _span(ins),
            f"{ins['score']:.4f}",
            _span(oos),
            f"{oos['score']:.4f}",
            f"{fold['gap']:+.4f}",
        )
    folds.add_row(
        "mean",
        "",
        f"{results.mean_in_sample:.4f}",
        "",
        f"{results.mean_out_of_sample:.4f}",
        f"{results.mean_gap:+.4f}",
    )
    console.print(folds)
    h, b = results.holdout, results.holdout_baseline
    for line in (
        f"HOLDOUT {_span(h)}, never seen while choosing, scored once: {name} {h['score']:.4f} "
        f"(return {h['return_pct']:.2f} %, max drawdown {h['max_drawdown_pct']:.2f} %, "
        f"{_trades(h, results.min_trades)}); the settings as given: {b['score']:.4f} "
        f"({_trades(b, results.min_trades)})",
        "The OOS mean chose the best trial, so it flatters it; trust the holdout.",
        _counts(results),
        f"settings: {out}  results: {report}",
    ):
        console.print(line, soft_wrap=True, highlight=False)


def _trades(block: dict[str, Any], min_trades: int) -> str:
    """A block's trades, and when they are fewer than --min-trades, that they are: a block
    without trades scores 0, which is no measure of trading settings."""
    trades = int(block["trades"])
    said = f"{trades} trade" if trades == 1 else f"{trades} trades"
    return said if trades >= min_trades else f"{said}, fewer than --min-trades {min_trades}"


def _counts(results: StudyResults) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in results.trials.items())
    short = len(results.too_few_trades)
    if not short:
        return f"trials: {counts}"
    return (
        f"trials: {counts}; {short} of them set aside, not eligible as best: fewer trades "
        f"in their out-of-sample blocks than --min-trades {results.min_trades}"
    )


def _span(block: dict[str, Any]) -> str:
    return f"{block['start'][:10]}→{block['end'][5:10]}"


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
