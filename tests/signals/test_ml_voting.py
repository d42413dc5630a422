"""Voting (SPEC §3.1 counts) over calibrated votes, and the decision rule in money."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.signals.voting import decide, member_votes

BUY, HOLD, SELL = 1, 0, -1


def one(
    votes: list[tuple[int, float, float] | None], min_models: int = 2
) -> tuple[int, float, float]:
    """Vote a single row; each vote is (action, calibrated P(win), expected R); None abstains."""
    actions = np.array([[v[0] if v else 0] for v in votes], dtype=np.int8)
    weights = np.array([[v[1] if v else 0.0] for v in votes])
    expected = np.array([[v[2] if v else 0.0] for v in votes])
    present = np.array([[v is not None] for v in votes])
    action, confidence, expected_r = decide(actions, weights, expected, present, min_models)
    return int(action[0]), float(confidence[0]), float(expected_r[0])


def test_three_agreeing_models_carry_their_mean_probability_and_expected_r() -> None:
    action, confidence, expected = one(
        [(BUY, 0.8, 0.3), (BUY, 0.6, 0.1), (BUY, 0.7, 0.2), (SELL, 0.9, 0.4)]
    )
    assert action == BUY
    assert confidence == pytest.approx(0.7)
    assert expected == pytest.approx(0.2)


def test_two_against_two_goes_to_the_side_with_more_probability_weight() -> None:
    action, confidence, _ = one(
        [(BUY, 0.9, 0.2), (BUY, 0.8, 0.2), (SELL, 0.6, 0.2), (SELL, 0.5, 0.2)]
    )
    assert action == BUY
    assert confidence == pytest.approx(0.85)


def test_an_exact_two_two_tie_is_hold() -> None:
    assert one([(BUY, 0.5, 0.1), (BUY, 0.5, 0.1), (SELL, 0.5, 0.1), (SELL, 0.5, 0.1)])[0] == HOLD


def test_two_of_three_is_a_weak_consensus_for_the_pair() -> None:
    action, confidence, _ = one([(SELL, 0.6, 0.1), (SELL, 0.5, 0.3), (BUY, 0.9, 0.5), None])
    assert action == SELL
    assert confidence == pytest.approx(0.55)


def test_all_different_or_three_holds_is_no_signal() -> None:
    assert one([(BUY, 0.9, 0.1), (SELL, 0.9, 0.1), (HOLD, 0.9, 0.0), None]) == (HOLD, 0.0, 0.0)
    assert one([(HOLD, 0.6, 0), (HOLD, 0.6, 0), (HOLD, 0.6, 0), (BUY, 0.9, 1)])[0] == HOLD


def test_fewer_votes_than_min_models_is_no_signal() -> None:
    assert one([(BUY, 0.9, 0.2), None, None, None], min_models=2)[0] == HOLD
    assert one([(BUY, 0.9, 0.2), (BUY, 0.9, 0.2), None, None], min_models=3)[0] == HOLD
    assert one([(BUY, 0.9, 0.2), (BUY, 0.9, 0.2), None, None], min_models=2)[0] == BUY


def test_a_model_votes_for_the_side_worth_more_only_above_the_margin() -> None:
    probability = np.array([[0.55, 0.40], [0.55, 0.45], [0.30, 0.60], [0.5, 0.5]])
    expected = np.array([[0.20, -0.1], [0.04, 0.03], [-0.2, 0.30], [0.1, 0.1]])
    present = np.array([True, True, True, False])
    action, weight, r = member_votes(probability, expected, present, None, 0.05)
    assert action.tolist() == [BUY, HOLD, SELL, HOLD]
    assert weight.tolist() == pytest.approx([0.55, 0.45, 0.60, 0.0])
    assert r.tolist() == pytest.approx([0.20, 0.0, 0.30, 0.0])


def test_meta_labeling_only_takes_or_skips_the_proposed_side() -> None:
    probability = np.array([[0.6, 0.7], [0.6, 0.7], [0.6, 0.7]])
    expected = np.array([[0.2, 0.9], [0.2, 0.9], [0.2, 0.9]])
    present = np.ones(3, dtype=np.bool_)
    proposed = np.array([BUY, HOLD, SELL], dtype=np.int8)
    action, _, r = member_votes(probability, expected, present, proposed, 0.05)
    assert action.tolist() == [BUY, HOLD, SELL]
    assert r.tolist() == pytest.approx([0.2, 0.0, 0.9])
    skip = member_votes(probability, expected, present, proposed, 0.5)[0]
    assert skip.tolist() == [HOLD, HOLD, SELL]


side_outputs = st.tuples(
    st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(-2.0, 3.0), st.floats(-2.0, 3.0)
)


@given(
    models=st.lists(st.one_of(st.none(), side_outputs), min_size=4, max_size=4),
    margin=st.floats(-0.5, 0.5),
    min_models=st.integers(1, 4),
)
def test_a_signal_always_pays_its_margin_and_its_confidence_is_a_probability(
    models: list[tuple[float, float, float, float] | None], margin: float, min_models: int
) -> None:
    actions, weights, expected, present = [], [], [], []
    for m in models:
        p = np.array([[m[0], m[1]]]) if m else np.zeros((1, 2))
        r = np.array([[m[2], m[3]]]) if m else np.zeros((1, 2))
        ok = np.array([m is not None])
        a, w, e = member_votes(p, r, ok, None, margin)
        actions.append(a)
        weights.append(w)
        expected.append(e)
        present.append(ok)
    action, confidence, expected_r = decide(
        np.stack(actions), np.stack(weights), np.stack(expected), np.stack(present), min_models
    )
    if action[0] != HOLD:
        assert expected_r[0] > margin
        assert 0.0 <= confidence[0] <= 1.0
        assert sum(p[0] for p in present) >= min_models
    else:
        assert confidence[0] == 0.0
