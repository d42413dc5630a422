"""The vocabularies' derived figures (domain/enums.py), kept on each member for speed: what
each member says, and that they survive the round trips a value makes (pickle, the text the
database and the logs keep)."""

from __future__ import annotations

import pickle

import pytest

from quantum_trader.domain import Action, OrderKind, OrderSide, OrderStatus, Side


def test_a_side_knows_its_sign_and_the_order_sides_that_enter_and_leave_it() -> None:
    table = {s: (s.sign, s.entry_order_side, s.exit_order_side) for s in Side}
    assert table == {
        Side.LONG: (1, OrderSide.BUY, OrderSide.SELL),
        Side.SHORT: (-1, OrderSide.SELL, OrderSide.BUY),
    }


def test_an_action_opens_a_long_a_short_or_nothing() -> None:
    assert {a: a.side for a in Action} == {
        Action.BUY: Side.LONG,
        Action.SELL: Side.SHORT,
        Action.HOLD: None,
    }


def test_only_plain_market_orders_are_not_conditional() -> None:
    assert [k for k in OrderKind if not k.is_conditional] == [OrderKind.MARKET]


def test_final_statuses_are_those_after_which_nothing_happens_to_the_order() -> None:
    final = {s for s in OrderStatus if s.is_final}
    assert final == {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }


@pytest.mark.parametrize("member", [*Side, *Action, *OrderKind, *OrderStatus])
def test_a_member_is_the_same_member_after_pickle_and_text(
    member: Side | Action | OrderKind | OrderStatus,
) -> None:
    assert pickle.loads(pickle.dumps(member)) is member
    assert type(member)(str(member)) is member
