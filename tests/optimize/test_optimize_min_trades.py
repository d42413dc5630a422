"""`--min-trades`: a trial whose out-of-sample blocks together hold fewer trades is not
eligible as best. A block without trades scores 0, so before this rule settings that never
traded beat the settings as given (−25.9 in the probe of 2026-12-03) and were written as the
best: a config that turns trading off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from optimize_builders import SYMBOLS, optimize_cli, write_space
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from test_optimize_results import BLOCK, results

from quantum_trader.config import Settings
from quantum_trader.optimize.eligibility import best, pareto_front, scored
from quantum_trader.optimize.objective import TOO_FEW_TRADES, Evaluation, Objective, Score
from quantum_trader.optimize.results import StudyResults, collect, print_results
from quantum_trader.optimize.runner import OptimizeRequest, cut_markets, study_layout, trial_base
from quantum_trader.optimize.space import load_space
from quantum_trader.optimize.study import StudyRequest

# The risk guard refuses every entry below this balance: the paper account holds 10,000 USDT.
NEVER_TRADES = {"risk.min_balance_usdt": 1_000_000.0}
TRADES = {"risk.min_balance_usdt": 100.0}
EITHER = '[space]\n"risk.min_balance_usdt" = { choices = [100.0, 1000000.0] }\n'
# One fold of two days and a two-day holdout ending 2025-10-16: the settings as given make 4
# trades out of sample there and score a Sharpe of −25.9, the probe's case.
WINDOW = (
    *("--symbols", ",".join(SYMBOLS), "--end", "2025-10-16"),
    *("--fold-days", "2", "--folds", "1", "--holdout-days", "2", "--objective", "sharpe"),
)


def evaluation(tmp_path: Path, min_trades: int, multi: bool = False) -> Evaluation:
    settings = Settings(data_dir=tmp_path / "data")
    request = OptimizeRequest(
        space=write_space(tmp_path, EITHER),
        trials=2,
        symbols=SYMBOLS,
        end=datetime(2025, 10, 16, tzinfo=UTC),
        fold_days=2,
        folds=1,
        holdout_days=2,
        score=Score.SHARPE,
        multi=multi,
        min_trades=min_trades,
    )
    base = trial_base(settings, request)
    layout = study_layout(base, request)
    markets = cut_markets(base, layout, tmp_path / "cuts")
    space = load_space(request.space, settings)
    scratch = tmp_path / "runs"
    return Evaluation(base, space, layout, markets, request.score, multi, scratch, min_trades)


def study_of(e: Evaluation) -> tuple[optuna.Study, StudyResults]:
    """The trial that never trades, then the one that does, in a real Optuna study."""
    study = optuna.create_study(directions=["maximize", "minimize"] if e.multi else ["maximize"])
    for params in (NEVER_TRADES, TRADES):
        study.enqueue_trial(params)
    study.optimize(Objective(e), n_trials=2)
    request = StudyRequest("sqlite:///:memory:", study.study_name, 2, None, e.multi, {})
    return study, collect(study, e, request)


@pytest.mark.slow
@pytest.mark.parametrize("multi", [False, True], ids=["tpe", "nsga-ii"])
def test_a_trial_that_never_trades_is_set_aside_and_the_one_that_trades_is_chosen(
    tmp_path: Path, multi: bool
) -> None:
    study, found = study_of(evaluation(tmp_path, min_trades=1, multi=multi))
    never, trades = study.trials
    assert never.state is TrialState.PRUNED
    assert never.user_attrs[TOO_FEW_TRADES] == 0
    assert trades.state is TrialState.COMPLETE
    assert found.best_trial == trades.number
    assert found.best_params == TRADES
    assert found.folds[0]["out_of_sample"]["trades"] >= 1
    assert found.min_trades == 1
    assert found.too_few_trades == [{"trial": never.number, "trades": 0}]
    assert {"trial": never.number, "reason": "too few trades: 0 in the out-of-sample blocks"} in (
        found.pruned
    )
    if multi:
        assert [row["trial"] for row in found.pareto_front] == [trades.number]
    text = printed(tmp_path, found)
    assert "1 of them set aside, not eligible as best: fewer trades in their out-of-sample " in text


@pytest.mark.slow
def test_min_trades_0_lets_the_trial_that_never_trades_win_as_before(tmp_path: Path) -> None:
    study, found = study_of(evaluation(tmp_path, min_trades=0))
    never, trades = study.trials
    assert never.state is trades.state is TrialState.COMPLETE
    assert never.value == 0.0
    assert trades.value is not None
    assert trades.value < 0  # −25.9: it lost
    assert found.best_trial == never.number  # what `optimize` did before --min-trades
    assert found.too_few_trades == []


@pytest.mark.slow
def test_when_no_trial_makes_enough_trades_the_command_says_so_in_one_line_and_exits_2(
    tmp_path: Path,
) -> None:
    space = write_space(tmp_path, '[space]\n"risk.min_balance_usdt" = { low = 1e6, high = 2e6 }\n')
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "2", "--seed", "1", *WINDOW)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == (
        "error: --study optimize: no trial is eligible as best: of the trials that ran every "
        "fold, none made at least 1 trade in its out-of-sample blocks (--min-trades; 2 set "
        "aside); widen the space, lengthen the blocks (--fold-days, --folds) or lower "
        "--min-trades"
    )
    assert list((tmp_path / "optimize").iterdir()) == []  # no "best" of nothing written


@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
def test_a_min_trades_that_is_not_a_count_is_refused(tmp_path: Path, value: str) -> None:
    space = write_space(tmp_path, EITHER)
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "1", "--min-trades", value)
    assert done.returncode == 2
    assert "Invalid value for '--min-trades'" in done.stderr
    assert not (tmp_path / "data" / "optimize").exists()


def frozen(number: int, state: TrialState, values: list[float] | None, **attrs: Any) -> FrozenTrial:
    """A stored trial as Optuna hands it back, its one fold's out-of-sample block made of
    `attrs` (return_pct, max_drawdown_pct, score, trades)."""
    oos = {**BLOCK, **{k: v for k, v in attrs.items() if k != TOO_FEW_TRADES}}
    user_attrs: dict[str, Any] = {"folds": [{"fold": 1, "in_sample": BLOCK, "out_of_sample": oos}]}
    if TOO_FEW_TRADES in attrs:
        user_attrs[TOO_FEW_TRADES] = attrs[TOO_FEW_TRADES]
    trial = optuna.trial.create_trial(
        state=state,
        values=values,
        params={"x": float(number)},
        distributions={"x": FloatDistribution(0, 100)},
        user_attrs=user_attrs,
        intermediate_values={1: oos["score"]} if state is TrialState.PRUNED else None,
    )
    trial.number = number
    return trial


def test_the_choice_is_made_from_the_recorded_trades_whatever_the_rule_was_when_stored() -> None:
    trials = [
        frozen(0, TrialState.COMPLETE, [0.0], score=0.0, trades=0),  # stored with --min-trades 0
        frozen(1, TrialState.COMPLETE, [-2.0], score=-2.0, trades=3),
        frozen(2, TrialState.PRUNED, None, score=-1.0, trades=2, too_few_trades=2),  # under 5
        frozen(3, TrialState.PRUNED, None, score=9.0, trades=9),  # by the median pruner
    ]
    candidates = scored(trials, multi=False)
    assert [(s.trial.number, s.values, s.trades) for s in candidates] == [
        (0, (0.0,), 0),
        (1, (-2.0,), 3),
        (2, (-1.0,), 2),  # its mean over the folds, not Optuna's last intermediate value
    ]
    assert best([s for s in candidates if s.trades >= 1], multi=False).trial.number == 2
    assert best([s for s in candidates if s.trades >= 3], multi=False).trial.number == 1
    assert best(candidates, multi=False).trial.number == 0  # --min-trades 0: as before


def point(number: int, return_pct: float, drawdown_pct: float, trades: int) -> FrozenTrial:
    values = [return_pct, drawdown_pct]
    return frozen(
        number,
        TrialState.COMPLETE,
        values,
        return_pct=return_pct,
        max_drawdown_pct=drawdown_pct,
        trades=trades,
    )


def test_the_pareto_front_is_taken_among_the_eligible_trials_only() -> None:
    trials = [point(0, 0.0, 0.0, 0), point(1, -1.0, 2.0, 4), point(2, 3.0, 5.0, 4)]
    trials += [point(3, 3.0, 5.0, 5), point(4, 2.0, 6.0, 4)]
    candidates = scored(trials, multi=True)
    eligible = [s for s in candidates if s.trades >= 1]
    assert [s.trial.number for s in pareto_front(candidates)] == [0, 2, 3]
    # Trial 0 dominated trial 1; set aside, it no longer hides it.
    assert [s.trial.number for s in pareto_front(eligible)] == [1, 2, 3]
    assert best(eligible, multi=True).trial.number == 2  # 3 % per 5 %; trial 1 lost money


def printed(tmp_path: Path, found: StudyResults) -> str:
    console = Console(record=True, width=400)
    print_results(console, found, tmp_path / "best.toml", tmp_path / "best.results.json")
    return console.export_text()


def test_the_holdout_line_says_when_the_settings_as_given_trade_too_little(
    tmp_path: Path,
) -> None:
    found = replace(
        results(),
        holdout={**BLOCK, "trades": 1},
        holdout_baseline={**BLOCK, "score": 0.0, "trades": 0},
        min_trades=1,
    )
    text = printed(tmp_path, found)
    assert "max drawdown 2.00 %, 1 trade); the settings as given: 0.0000 (0 trades, fewer " in text
    assert "than --min-trades 1)" in text
    assert "set aside" not in text
    found = replace(found, min_trades=0)
    assert "the settings as given: 0.0000 (0 trades)" in printed(tmp_path, found)
