"""Fully populated and minimal domain records for the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ClosedTrade,
    Decision,
    EquitySnapshot,
    ExitMode,
    ExitReason,
    Fill,
    GateName,
    Order,
    OrderKind,
    OrderSide,
    OrderStatus,
    Position,
    PositionEvent,
    ReasonCode,
    Side,
    TrailMode,
    Verdict,
)

T0 = datetime(2025, 9, 1, 12, 0, 0, 123456, tzinfo=UTC)
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def order(
    client_order_id: str = "qt-1",
    *,
    symbol: str = BTC,
    status: OrderStatus = OrderStatus.PENDING,
    created_at: datetime = T0,
) -> Order:
    """A minimal order: every optional field at its default."""
    return Order(
        client_order_id=client_order_id,
        symbol=symbol,
        side=OrderSide.BUY,
        kind=OrderKind.MARKET,
        quantity=Decimal("0.00012345"),
        status=status,
        created_at=created_at,
    )


def full_order() -> Order:
    """An order with every field set to a non-default value."""
    return Order(
        client_order_id="qt-stop-7",
        symbol=ETH,
        side=OrderSide.SELL,
        kind=OrderKind.STOP_MARKET,
        quantity=Decimal("1.500"),
        status=OrderStatus.OPEN,
        created_at=T0,
        exchange_order_id="8389765512",
        trigger_price=Decimal("2450.10"),
        reduce_only=True,
        filled_quantity=Decimal("0.250"),
        average_price=Decimal("2451.3333333333333333"),
        fee_usdt=Decimal("0.12256665"),
        updated_at=at(5),
        detail="partially filled",
        close_position=True,
    )


def fill(
    trade_id: str = "t-1",
    *,
    symbol: str = BTC,
    time: datetime = T0,
    quantity: Decimal = Decimal("0.001"),
    price: Decimal = Decimal("64000.1"),
) -> Fill:
    return Fill(
        trade_id=trade_id,
        client_order_id="qt-1",
        symbol=symbol,
        side=OrderSide.BUY,
        quantity=quantity,
        price=price,
        fee_usdt=Decimal("0.0256000400"),
        time=time,
        is_maker=True,
    )


def position(symbol: str = BTC, *, stop: Decimal = Decimal("63000")) -> Position:
    """A minimal position: every optional field at its default."""
    return Position(
        symbol=symbol,
        side=Side.LONG,
        quantity=Decimal("0.010"),
        entry_price=Decimal("64000.5"),
        leverage=5,
        stop_price=stop,
        take_profit_price=Decimal("66000"),
        opened_at=T0,
        entry_order_id="qt-1",
        initial_stop_price=Decimal("63000"),
        initial_quantity=Decimal("0.010"),
    )


def full_position() -> Position:
    """A position with every field set to a non-default value."""
    return Position(
        symbol=ETH,
        side=Side.SHORT,
        quantity=Decimal("0.75"),
        entry_price=Decimal("2500.25"),
        leverage=3,
        stop_price=Decimal("2480.00"),
        take_profit_price=Decimal("2300"),
        opened_at=T0,
        entry_order_id="qt-9",
        initial_stop_price=Decimal("2550.5"),
        initial_quantity=Decimal("1.5"),
        atr_pct=0.0123456789,
        exit_mode=ExitMode.TREND_FOLLOW,
        trail_mode=TrailMode.LOOSE,
        stop_order_id="qt-9-sl-2",
        take_profit_order_id="qt-9-tp",
        stop_replaced_at=at(600),
        break_even_done=True,
        partial_taken=True,
        trailing_active=True,
        realized_pnl_usdt=Decimal("-12.3456789"),
        fees_usdt=Decimal("1.00000001"),
        highest_price=Decimal("2510"),
        lowest_price=Decimal("2401.75"),
    )


def closed_trade(
    symbol: str = BTC,
    *,
    closed_at: datetime = T0,
    entry_order_id: str = "qt-1",
    r_multiple: float | None = 1.7345,
    pnl_usdt: str = "9.87654321",
) -> ClosedTrade:
    return ClosedTrade(
        symbol=symbol,
        side=Side.SHORT,
        quantity=Decimal("0.010"),
        entry_price=Decimal("64000.5"),
        exit_price=Decimal("63000.25"),
        opened_at=closed_at - timedelta(hours=3),
        closed_at=closed_at,
        exit_reason=ExitReason.TRAILING_HIT,
        pnl_usdt=Decimal(pnl_usdt),
        fees_usdt=Decimal("0.0512"),
        funding_usdt=Decimal("-0.0031"),
        r_multiple=r_multiple,
        entry_order_id=entry_order_id,
    )


def decision(
    cycle_id: str = "c-1",
    *,
    time: datetime = T0,
    gate: GateName = GateName.GOVERNOR,
    reason: ReasonCode = ReasonCode.PAUSED,
    symbol: str = BTC,
) -> Decision:
    """A minimal decision: a denial with every optional field at its default."""
    return Decision(cycle_id, time, Verdict.deny(gate, symbol, reason))


def full_decision() -> Decision:
    """A decision with every field, including the verdict's adjustments, set."""
    verdict = Verdict(
        gate=GateName.BALANCER,
        symbol=ETH,
        approved=True,
        reason=ReasonCode.APPROVED,
        detail="sector ok",
        until=at(3600),
        size_factor=0.5,
        exit_mode=ExitMode.TREND_FOLLOW,
        tp_r_multiple=2.5,
    )
    extra: dict[str, object] = {
        "votes": [1, -1, 0],
        "regime": "TRENDING",
        "nested": {"atr": 0.0123},
    }
    return Decision("c-9", at(1), verdict, confidence=0.875, side=Side.SHORT, extra=extra)


def position_event(symbol: str = BTC, *, time: datetime = T0) -> PositionEvent:
    return PositionEvent(symbol=symbol, time=time, reason=ExitReason.BREAK_EVEN)


def full_position_event() -> PositionEvent:
    return PositionEvent(
        symbol=ETH,
        time=at(30),
        reason=ExitReason.PARTIAL_TP,
        detail="half off at 1R",
        price=Decimal("2450.5"),
        quantity=Decimal("0.375"),
        new_stop_price=Decimal("2500.25"),
    )


def equity(time: datetime = T0, equity_usdt: str = "10000.00") -> EquitySnapshot:
    return EquitySnapshot(
        time=time,
        equity_usdt=Decimal(equity_usdt),
        wallet_usdt=Decimal("9990.123456"),
        used_margin_usdt=Decimal("512.5"),
        open_positions=2,
    )
