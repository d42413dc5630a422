"""Walk-forward blocks that cannot learn because of a setting, not of the data: the refusal
names the setting and its value (found by an outside probe of the ML commands, 2026-12-06:
`ensemble.embargo_h = 1000000` or `validation_fraction = 0.999` were answered "raise
ensemble.training_days or lower ensemble.walk_forward_folds", which changes nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from ml_fixtures import TINY, tiny_panel

from quantum_trader.errors import MarketDataError
from quantum_trader.signals.panel import Panel, make_folds


@pytest.fixture(scope="module")
def panel() -> Panel:
    return tiny_panel()


@pytest.mark.parametrize(
    ("update", "named", "not_named"),
    [
        (
            {"embargo_h": 400},
            "; lower ensemble.embargo_h (400: a block learns only from rows whose trades ended "
            "400 h before it; without it the first would learn from ",
            ("training_days", "walk_forward_folds", "validation_fraction"),
        ),
        (
            {"validation_fraction": 0.999},
            "; lower ensemble.validation_fraction (0.999: the blocks take the last 99.9% of the "
            "hours, leaving ",
            ("embargo_h",),
        ),
        (
            {"validation_fraction": 0.001},
            "; raise ensemble.validation_fraction (0.001: 0.001 of ",
            ("embargo_h",),
        ),
    ],
    ids=["embargo", "validation too large", "validation too small"],
)
def test_blocks_starved_by_a_setting_name_it_with_its_value(
    panel: Panel, update: dict[str, Any], named: str, not_named: tuple[str, ...]
) -> None:
    with pytest.raises(MarketDataError) as refused:
        make_folds(panel, TINY.model_copy(update=update))
    line = str(refused.value)
    assert line.startswith("too little data to train and validate: ")
    assert named in line
    for other in not_named:
        assert other not in line
    assert line.endswith("; nothing was published")


def test_the_default_settings_cut_the_same_data_into_blocks_that_learn(panel: Panel) -> None:
    assert len(make_folds(panel, TINY).blocks) == TINY.walk_forward_folds
