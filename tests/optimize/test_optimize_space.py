"""The search space file: what it accepts, and one clear line for each thing it refuses."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from optimize_builders import optimize_cli, write_space

from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.optimize.space import Parameter, apply, load_space


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_space(write_space(tmp_path, text), Settings())
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_float_int_log_step_and_choices_are_read_with_the_settings_own_types(
    tmp_path: Path,
) -> None:
    space = load_space(
        write_space(
            tmp_path,
            """
[space]
"orchestrator.min_confidence_trending" = { low = 0.1, high = 0.6, step = 0.05 }
"sizing.default_leverage" = { low = 1, high = 5 }
"risk.max_risk_per_trade" = { low = 0.005, high = 0.02, log = true }
"sizing.stop_atr_multiple" = { low = 1, high = 3 }
"monitor.trail_mode_trend_follow" = { choices = ["AGGRESSIVE", "LOOSE"] }
""",
        ),
        Settings(),
    )
    assert space.parameters == (
        Parameter("orchestrator.min_confidence_trending", "float", 0.1, 0.6, step=0.05),
        Parameter("sizing.default_leverage", "int", 1.0, 5.0),
        Parameter("risk.max_risk_per_trade", "float", 0.005, 0.02, log=True),
        Parameter("sizing.stop_atr_multiple", "float", 1.0, 3.0),
        Parameter(
            "monitor.trail_mode_trend_follow", "categorical", choices=("AGGRESSIVE", "LOOSE")
        ),
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            '"orchestrator.min_confidence" = { low = 0.1, high = 0.5 }',
            "unknown setting 'min_confidence' in orchestrator",
        ),
        ('"gates.orchestrator.x" = { low = 0.1, high = 0.5 }', "not a searchable section"),
        ('"exchange.paper_order_latency_s" = { low = 0, high = 1 }', "not a searchable section"),
        ('"sizing.multipliers" = { low = 0, high = 1 }', "names a section, not a setting"),
        (
            '"risk.max_risk_per_trade" = { low = 0.01, high = 0.5 }',
            "outside the setting's bounds (> 0, <= 0.1)",
        ),
        (
            '"orchestrator.min_confidence_trending" = { low = -0.1, high = 0.5 }',
            "outside the setting's bounds (>= 0, <= 1)",
        ),
        (
            '"sizing.default_leverage" = { low = 1.5, high = 5 }',
            "an int setting: low and high must be integers",
        ),
        ('"sizing.stop_atr_multiple" = { low = 3, high = 1 }', "low must be below high"),
        (
            '"sizing.stop_atr_multiple" = { low = 0, high = 1, log = true }',
            "log = true needs low > 0",
        ),
        ('"sizing.stop_atr_multiple" = { low = 1, hi = 2 }', "unknown key(s) ['hi']"),
        ('"sizing.method" = { low = 1, high = 2 }', "not a numeric setting"),
        (
            '"sizing.method" = { choices = ["math", "martingale"] }',
            "'martingale' is refused by the setting",
        ),
        (
            '"monitor.trail_mode_trend_follow" = { choices = [] }',
            "choices must be a non-empty list",
        ),
        ('"sizing.stop_atr_multiple" = 2.0', "expected an inline table"),
        (
            '"sizing.stop_atr_multiple" = { low = 1, high = 3, step = 5 }',
            "step 5 is wider than the range 1 .. 3",  # Optuna would search 1 alone
        ),
        (
            # Found by an outside probe (2026-12-03): accepted, though every trial is scored
            # with the rule agent and the chosen file says signals.source = "rules".
            '"signals.source" = { choices = ["rules", "ensemble"] }',
            "the study scores the rule agent (docs/OPTIMIZE.md); signals.source cannot be searched",
        ),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_file_the_setting_and_the_problem(
    tmp_path: Path, entry: str, expected: str
) -> None:
    line = refusal(tmp_path, f"[space]\n{entry}\n")
    path = entry.split('"')[1]
    assert line.startswith(f"--space {tmp_path / 'space.toml'}: {path}: ")
    assert expected in line


def test_a_malformed_or_empty_file_is_one_line(tmp_path: Path) -> None:
    assert "is not valid TOML" in refusal(tmp_path, "[space\n")
    assert "starts with a byte-order mark" in refusal(tmp_path, "\ufeff[space]\n")
    assert "must hold one [space] table" in refusal(tmp_path, "")
    assert "must hold one [space] table" in refusal(tmp_path, "[spaces]\na = 1\n")
    with pytest.raises(ConfigurationError, match="--space: file not found"):
        load_space(tmp_path / "missing.toml", Settings())


def test_a_combination_that_breaks_a_rule_between_settings_is_refused_by_apply() -> None:
    """Each value is within its own bounds; together they break `at_least`."""
    with pytest.raises(ConfigurationError, match="max_risk_fraction"):
        apply(Settings(), {"sizing.risk_per_trade": 0.05})
    chosen = apply(
        Settings(),
        {
            "sizing.risk_per_trade": 0.05,
            "sizing.max_risk_fraction": 0.05,
            "risk.max_risk_per_trade": 0.05,
        },
    )
    assert chosen.sizing.risk_per_trade == 0.05


@pytest.mark.slow
def test_the_command_answers_a_bad_space_or_window_with_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    bad = write_space(tmp_path, '[space]\n"risk.max_risk_per_trade" = { low = 0.01, high = 0.5 }\n')
    done = optimize_cli(tmp_path, "--space", str(bad), "--trials", "2")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"configuration error: --space {bad}: risk.max_risk_per_trade: range 0.01 .. 0.5 is "
        "outside the setting's bounds (> 0, <= 0.1)"
    ]
    space = write_space(tmp_path)
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "2", "--folds", "12")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("configuration error: --folds 12 --fold-days 14 --holdout-days 14")


ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_SPACES = {
    "README.md": ("cat > space.toml <<'TOML'\n", "TOML\n"),
    "docs/OPTIMIZE.md": ("```toml\n[space]\n", "```\n"),
    "quantum_trader/optimize/space.py": ("```toml\n[space]\n", "```\n"),
}


def documented_space(name: str) -> str:
    text = (ROOT / name).read_text(encoding="utf-8")
    begin, end = DOCUMENTED_SPACES[name]
    start = text.index(begin) + len(begin)
    block = text[start : text.index(end, start)]
    return block if block.startswith("[space]") else "[space]\n" + block


def draws(parameter: Parameter) -> list[object]:
    """Values a trial can draw: each choice, or both ends and the middle of a range."""
    if parameter.choices:
        return list(parameter.choices)
    assert parameter.low is not None
    assert parameter.high is not None
    ends = [parameter.low, (parameter.low + parameter.high) / 2, parameter.high]
    return [round(v) if parameter.kind == "int" else v for v in ends]


@pytest.mark.parametrize("name", sorted(DOCUMENTED_SPACES))
def test_every_draw_of_a_documented_space_keeps_the_rules_between_settings(
    name: str, tmp_path: Path
) -> None:
    """A space copied from the documentation must give trials that run: each combination of
    its ends, middles and choices is accepted whole with the other settings as they are
    (the README's drew `risk.max_risk_per_trade` below the sizer's default
    `sizing.max_risk_fraction`, so every trial was refused)."""
    base = Settings()
    space = load_space(write_space(tmp_path, documented_space(name)), base)
    paths = [p.path for p in space.parameters]
    for values in itertools.product(*(draws(p) for p in space.parameters)):
        apply(base, dict(zip(paths, values, strict=True)))  # ConfigurationError if refused


@pytest.mark.slow
def test_a_space_whose_draws_always_break_a_rule_names_the_rule_when_no_trial_completes(
    tmp_path: Path,
) -> None:
    """Every draw below the sizer's default `sizing.max_risk_fraction` (0.02) breaks the rule
    that the risk guard's ceiling is at least it: the closing line says which rule, not only
    "see the log" (the README's own example space did this)."""
    space = write_space(
        tmp_path, '[space]\n"risk.max_risk_per_trade" = { low = 0.005, high = 0.015 }\n'
    )
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "3", "--seed", "1")
    assert done.returncode == 2
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(
        "error: --study optimize: no trial completed: 3 of 3 drew settings that break a rule "
        "between settings, 3 of them this one (trial 0): sizing.max_risk_fraction: must be at "
        "most risk.max_risk_per_trade ("
    )
    assert line.endswith(
        "; change the space so that its draws keep the rule, or set the other setting in --config"
    )
