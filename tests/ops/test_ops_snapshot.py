"""/status's futures figures: the liquidation price by its definition, positions without a
mark yet, and the reasons trading is limited."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain import Position, Side
from quantum_trader.gates.governor import Breaker, GovernorDecision, GovernorState, Trip
from quantum_trader.ops.health import HealthReport, HealthStatus
from quantum_trader.ops.snapshot import liquidation_price, position_status, why_not_active

T0 = datetime(2025, 9, 8, tzinfo=UTC)


@given(
    side=st.sampled_from(Side),
    entry=st.decimals(min_value="0.0001", max_value="1000000", places=4),
    leverage=st.integers(min_value=1, max_value=125),
    rate=st.decimals(min_value="0", max_value="0.05", places=4),
)
def test_at_the_liquidation_price_the_loss_eats_the_margin_down_to_maintenance(
    side: Side, entry: Decimal, leverage: int, rate: Decimal
) -> None:
    price = liquidation_price(side, entry, leverage, rate)
    loss = (entry - price) * side.sign  # per unit of quantity
    margin = entry / leverage
    maintenance = rate * price
    assert abs(loss - (margin - maintenance)) <= entry * Decimal("1e-20")
    if rate < margin / entry:  # Binance caps leverage so that maintenance < initial margin
        assert (entry - price) * side.sign > 0  # then it is on the losing side of the entry


def position(side: Side) -> Position:
    return Position(
        symbol="BTC/USDT:USDT",
        side=side,
        quantity=Decimal("0.01"),
        entry_price=Decimal("100000"),
        leverage=4,
        stop_price=Decimal("98000") if side is Side.LONG else Decimal("102000"),
        take_profit_price=Decimal("105000"),
        opened_at=T0,
        entry_order_id="qte1",
        initial_stop_price=Decimal("98000"),
        initial_quantity=Decimal("0.01"),
    )


def test_a_position_status_has_its_margin_pnl_and_liquidation() -> None:
    short = position_status(position(Side.SHORT), Decimal("99000"), Decimal("0.005"))
    assert short.unrealized_pnl_usdt == Decimal("10")
    assert short.margin_usdt == Decimal("250")
    assert short.liquidation_price > short.stop_price > short.entry_price
    assert short.protected is False  # no stop order id: the page says MISSING


def test_before_the_first_mark_the_pnl_is_unknown_not_zero() -> None:
    status = position_status(position(Side.LONG), None, Decimal("0.005"))
    assert status.mark_price is None
    assert status.unrealized_pnl_usdt is None


def test_every_reason_trading_is_limited_is_named() -> None:
    governor = GovernorState(
        trips=(
            Trip(Breaker.HOURLY_LOSS, GovernorDecision.PAUSE_1H, T0, T0, "loss 0.006"),
            Trip(Breaker.LOSING_STREAK, GovernorDecision.DEFENSIVE_EXIT, T0, None),
        )
    )
    health = HealthReport(HealthStatus.CRITICAL, ("exchange unreachable",))
    reasons = why_not_active(governor, health, replay_finished=True)
    assert reasons[0] == f"HOURLY_LOSS: PAUSE_1H until {T0.isoformat()} (loss 0.006)"
    assert reasons[1] == "LOSING_STREAK: DEFENSIVE_EXIT"
    assert reasons[2] == "health CRITICAL: exchange unreachable"
    assert "ended" in reasons[3]
    assert why_not_active(GovernorState(), HealthReport(HealthStatus.DEGRADED, ("x",)), False) == ()


def test_a_symbol_the_keeper_blocks_is_among_the_reasons() -> None:
    """An order of ours whose outcome is unknown blocks entries on its symbol until the
    keeper settles it: the page and `status` say so with the rest, not only in a table."""
    healthy = HealthReport(HealthStatus.HEALTHY, ())
    why = f"order qt-1-e-3 unsettled since {T0.isoformat()}"
    reasons = why_not_active(GovernorState(), healthy, False, {"ETH/USDT:USDT": why})
    assert reasons == (f"no entry on ETH/USDT:USDT until the keeper settles it: {why}",)
