"""Voting rules at their boundaries (SPEC §3.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.signals.ensemble import vote

BUY, HOLD, SELL = 1, 0, -1


def one(votes: list[tuple[int, float] | None], min_models: int = 2) -> tuple[int, float]:
    """Vote a single row; None is an abstaining model."""
    actions = np.array([[v[0] if v else 0] for v in votes], dtype=np.int8)
    confidences = np.array([[v[1] if v else 0.0] for v in votes])
    present = np.array([[v is not None] for v in votes])
    action, confidence = vote(actions, confidences, present, min_models)
    return int(action[0]), float(confidence[0])


def test_three_agreeing_models_are_a_strong_consensus() -> None:
    action, confidence = one([(BUY, 0.8), (BUY, 0.6), (BUY, 0.7), (SELL, 0.9)])
    assert action == BUY
    assert confidence == 0.70 + 0.20 * 0.7


def test_four_agreeing_models_stay_within_the_strong_band() -> None:
    action, confidence = one([(SELL, 1.0)] * 4)
    assert action == SELL
    assert confidence == pytest.approx(0.90)


def test_two_against_two_goes_to_the_side_with_more_confidence_weight() -> None:
    action, confidence = one([(BUY, 0.9), (BUY, 0.8), (SELL, 0.6), (SELL, 0.5)])
    assert action == BUY
    assert confidence == 0.40 + 0.20 * 1.7 / 2.8


def test_an_exact_two_two_tie_is_hold() -> None:
    assert one([(BUY, 0.5), (BUY, 0.5), (SELL, 0.5), (SELL, 0.5)]) == (HOLD, 0.0)


def test_two_buy_against_two_stronger_holds_is_hold() -> None:
    assert one([(BUY, 0.4), (BUY, 0.4), (HOLD, 0.6), (HOLD, 0.6)]) == (HOLD, 0.0)


def test_two_of_three_is_weak() -> None:
    action, confidence = one([(SELL, 0.6), (SELL, 0.6), (BUY, 0.6), None])
    assert action == SELL
    assert 0.40 <= confidence <= 0.60


def test_all_different_is_no_consensus() -> None:
    assert one([(BUY, 0.9), (SELL, 0.9), (HOLD, 0.9), None]) == (HOLD, 0.0)


def test_three_holds_are_hold() -> None:
    assert one([(HOLD, 0.9), (HOLD, 0.9), (HOLD, 0.9), (BUY, 1.0)]) == (HOLD, 0.0)


def test_fewer_votes_than_min_models_is_no_signal() -> None:
    assert one([(BUY, 0.9), None, None, None], min_models=2) == (HOLD, 0.0)
    assert one([(BUY, 0.9), (BUY, 0.9), None, None], min_models=3) == (HOLD, 0.0)
    assert one([(BUY, 0.9), (BUY, 0.9), None, None], min_models=2)[0] == BUY


def test_abstaining_models_do_not_count_even_with_buy_recorded() -> None:
    actions = np.array([[BUY], [BUY], [BUY], [SELL]], dtype=np.int8)
    confidences = np.array([[0.9], [0.9], [0.9], [0.9]])
    present = np.array([[True], [False], [False], [True]])
    action, confidence = vote(actions, confidences, present, 2)
    assert (int(action[0]), float(confidence[0])) == (HOLD, 0.0)


vote_strategy = st.one_of(
    st.none(), st.tuples(st.sampled_from([BUY, HOLD, SELL]), st.floats(0.01, 1.0))
)


@given(votes=st.lists(vote_strategy, min_size=4, max_size=4), min_models=st.integers(1, 4))
def test_confidence_always_falls_in_the_band_of_its_consensus(
    votes: list[tuple[int, float] | None], min_models: int
) -> None:
    action, confidence = one(votes, min_models)
    present = [v for v in votes if v is not None]
    agreeing = sum(1 for v in present if v[0] == action)
    if action == HOLD:
        assert confidence == 0.0
    elif agreeing >= 3:
        assert 0.70 <= confidence <= 0.90
    else:
        assert agreeing == 2
        assert 0.40 <= confidence <= 0.60
    if len(present) < min_models:
        assert action == HOLD


def test_rows_are_voted_independently() -> None:
    actions = np.array([[BUY, SELL], [BUY, SELL], [BUY, HOLD]], dtype=np.int8)
    confidences = np.full((3, 2), 0.5)
    present = np.ones((3, 2), dtype=np.bool_)
    action, _ = vote(actions, confidences, present, 2)
    assert action.tolist() == [BUY, SELL]
