"""The replays of keeper/round_trip.py against a model of Binance's one-way position: any run
of a person's market trades — from flat (`replay_from_flat`), or from a position as booked
(`replay`) — replayed, ends holding what the model holds (side, quantity, entry), and its legs
— the booked one, each position opened and closed, and the one held — realize exactly what
the model realized and carry every fee once. From a booked position the whole run is
booked, not only its newest round trip (two round trips within one look: the booked long
was closed at the second close's price, the first close and the person's position between
never booked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import ZERO, ExchangePosition, Fill, OrderSide, Position, Side
from quantum_trader.keeper.round_trip import replay, replay_from_flat

T0 = datetime(2025, 6, 1, tzinfo=UTC)
FEE_RATE = Decimal("0.0004")
SYMBOL = "BTC/USDT:USDT"
# Fees split across a trade that crossed zero are Decimal quotients (28 digits).
FEE_BOUND = Decimal("1e-20")

trades = st.lists(
    st.tuples(
        st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
        st.integers(min_value=1, max_value=6),  # × 0.001
        st.integers(min_value=900, max_value=1100),  # × 0.1
    ),
    min_size=1,
    max_size=12,
)


def fills_of(drawn: list[tuple[OrderSide, int, int]]) -> list[Fill]:
    fills = []
    for i, (side, lots, ticks) in enumerate(drawn):
        quantity, price = Decimal(lots) / 1000, Decimal(ticks) / 10
        fee = quantity * price * FEE_RATE
        at = T0 + timedelta(seconds=i + 1)
        fills.append(Fill(str(i), f"web_{i}", SYMBOL, side, quantity, price, fee, at))
    return fills


def modelled(
    fills: list[Fill], amount: Decimal = ZERO, entry: Decimal = ZERO
) -> tuple[Decimal, Decimal, Decimal]:
    """Binance's one-way position after `fills` from `amount` (signed) at `entry`: signed
    amount, entry (the average of what opened and added; a reduction leaves it; crossing
    zero sets it), and the PnL the reductions realized."""
    realized = ZERO
    for fill in fills:
        signed = fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
        if amount == 0 or (amount > 0) == (signed > 0):
            entry = (entry * abs(amount) + fill.price * fill.quantity) / abs(amount + signed)
            amount += signed
            continue
        closed = min(abs(signed), abs(amount))
        realized += (fill.price - entry) * closed * (1 if amount > 0 else -1)
        amount += signed
        if amount != 0 and (amount > 0) == (signed > 0):  # crossed zero
            entry = fill.price
    return amount, entry, realized


@settings(max_examples=300)
@given(drawn=trades)
def test_a_replay_from_flat_realizes_what_binance_does_and_every_fee_once(
    drawn: list[tuple[OrderSide, int, int]],
) -> None:
    fills = fills_of(drawn)
    amount, entry, realized = modelled(fills)
    held = None
    if amount != 0:
        side = Side.LONG if amount > 0 else Side.SHORT
        held = ExchangePosition(SYMBOL, side, abs(amount), entry, 3)

    found = replay_from_flat(held, fills, T0, None)

    assert found is not None
    legs = [*found.between, *([found.now_held] if found.now_held else [])]
    assert all(leg.quantity == 0 and leg.closed_at is not None for leg in found.between)
    if held is None:
        assert found.now_held is None
    else:
        assert found.now_held is not None
        now = found.now_held
        assert (now.side, now.quantity) == (held.side, held.quantity)
        assert abs(now.entry_price - entry) <= entry * Decimal("1e-9")
    assert abs(sum((leg.realized_usdt for leg in legs), ZERO) - realized) <= FEE_BOUND
    paid = sum((f.fee_usdt for f in fills), ZERO)
    assert abs(sum((leg.fees_usdt for leg in legs), ZERO) - paid) <= FEE_BOUND
    assert found.trade_ids == {f.trade_id for f in fills}


def position_of(amount: Decimal, entry: Decimal) -> ExchangePosition | None:
    if amount == 0:
        return None
    return ExchangePosition(SYMBOL, Side.LONG if amount > 0 else Side.SHORT, abs(amount), entry, 3)


@settings(max_examples=300)
@given(drawn=trades, lots=st.integers(min_value=1, max_value=6))
def test_a_replay_from_a_booked_long_books_every_round_trip_and_every_fee_once(
    drawn: list[tuple[OrderSide, int, int]], lots: int
) -> None:
    """Our long of `lots` × 0.001 at 100, booked; the person's trades after it."""
    start, start_entry = Decimal(lots) / 1000, Decimal(100)
    booked = Position(
        SYMBOL, Side.LONG, start, start_entry, 3, Decimal(97), Decimal(106), T0, "qt-e-1",
        Decimal(97), start,
    )  # fmt: skip
    fills = fills_of(drawn)
    amount, entry, realized = modelled(fills, start, start_entry)
    held = position_of(amount, entry)

    found = replay(booked, held, fills, None)

    assert found is not None
    legs = [found.ours, *found.between, *([found.now_held] if found.now_held else [])]
    assert all(leg.quantity == 0 for leg in found.between)
    assert abs(sum((leg.realized_usdt for leg in legs), ZERO) - realized) <= FEE_BOUND
    paid = sum((f.fee_usdt for f in fills), ZERO)
    assert abs(sum((leg.fees_usdt for leg in legs), ZERO) - paid) <= FEE_BOUND
    assert found.trade_ids == {f.trade_id for f in fills}
