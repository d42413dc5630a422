"""Label values known before their first event, which /metrics shows at 0 from the first scrape.

prometheus-client exports a labelled series only once it is touched: until then Grafana shows
"No data" and `increase()` misses the first event. `Metrics` touches every combination listed
here at start; those that depend on settings (loops, notification channels, exchange
operations) are declared by their owners. Unbounded values (error classes of a loop step,
order ids) are never listed: they appear at their first event.
"""

from __future__ import annotations

from collections.abc import Mapping

from quantum_trader.domain import ExitReason, GateName, OrderKind, OrderSide, ReasonCode
from quantum_trader.errors import (
    IpBanned,
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    RateLimited,
    RetryLater,
)

R = ReasonCode
# The reasons each gate gives today (APPROVED: it can approve). A pair missing here still
# appears at its first verdict; tests/ops/test_ops_metrics.py checks every code is listed.
VERDICTS: Mapping[GateName, tuple[ReasonCode, ...]] = {
    GateName.SIGNAL_FILTER: (R.LOW_CONFIDENCE, R.POSITION_ALREADY_OPEN, R.ORDER_UNSETTLED),
    GateName.ORCHESTRATOR: (
        R.APPROVED, R.SYMBOL_BLACKLISTED, R.SYMBOL_DISABLED, R.SYMBOL_HELD_AFTER_FILL_OFF_PLAN,
        R.DAILY_DRAWDOWN_LIMIT, R.MAX_OPEN_POSITIONS, R.SYMBOL_LOW_WIN_RATE,
        R.CHOPPY_LOW_CONFIDENCE, R.SHORT_IN_UPTREND, R.BELOW_DYNAMIC_CONFIDENCE,
    ),
    GateName.BALANCER: (
        R.APPROVED, R.CRITICAL_VIOLATIONS, R.LOW_PRIORITY, R.POSITION_ALREADY_OPEN,
        R.MAX_POSITIONS_REACHED, R.MAX_LONGS, R.MAX_SHORTS, R.TOTAL_RISK_EXCEEDED,
        R.INSUFFICIENT_MARGIN, R.LEVERAGE_TOO_HIGH, R.SYMBOL_OVERCONCENTRATED,
        R.SECTOR_OVEREXPOSED, R.NET_EXPOSURE_EXCEEDED, R.HIGH_CORRELATION,
    ),
    GateName.GOVERNOR: (
        R.APPROVED, R.EMERGENCY_SHUTDOWN, R.PAUSED, R.OPERATOR_PAUSED, R.NO_NEW_TRADES,
    ),
    GateName.SIZER: (
        R.APPROVED, R.UNKNOWN_SYMBOL, R.SIZE_ZERO, R.BELOW_MIN_QUANTITY, R.BELOW_MIN_NOTIONAL,
        R.STAGE_CAP_REACHED,
    ),
    GateName.RISK_GUARD: (
        R.APPROVED, R.UNKNOWN_SYMBOL, R.INVALID_ORDER, R.BALANCE_BELOW_MINIMUM,
        R.LEVERAGE_TOO_HIGH, R.BAD_PRECISION, R.BELOW_MIN_QUANTITY, R.BELOW_MIN_NOTIONAL,
        R.ABOVE_MAX_QUANTITY, R.INSUFFICIENT_FREE_BALANCE, R.MARGIN_PER_TRADE_EXCEEDED,
        R.NOTIONAL_EXPOSURE_EXCEEDED, R.MAX_OPEN_POSITIONS, R.RISK_PER_TRADE_EXCEEDED,
        R.REWARD_RISK_TOO_LOW,
    ),
    # The cycle's own denials, then the keeper's and the exchange's refusals of an entry.
    GateName.EXECUTION: (
        R.APPROVED, R.LIFECYCLE_PAPER, R.ORDER_FAILED, R.ORDER_UNSETTLED,
        R.POSITION_ALREADY_OPEN, R.REDUCING_ONLY, R.ORDER_REJECTED, R.INSUFFICIENT_FREE_BALANCE,
        R.UNKNOWN_SYMBOL, R.BAD_PRECISION, R.BELOW_MIN_QUANTITY, R.BELOW_MIN_NOTIONAL,
        R.ABOVE_MAX_QUANTITY, R.LEVERAGE_TOO_HIGH,
    ),
}  # fmt: skip
# Refusals of a close-all stop (keeper/carry_close_all.py), never of an entry: no verdict.
STOP_ONLY_REASONS = (R.CLOSE_ALL_EXISTS, R.NO_POSITION_FOR_CLOSE_ALL)
ORDER_KINDS = tuple(OrderKind)
ORDER_OUTCOMES = ("filled", "accepted", "rejected", "unknown")  # ops/metered.py
FILL_SIDES = tuple(OrderSide)
# Every exit reason but TRAILING, which moves a stop and closes nothing.
CLOSING_REASONS = tuple(r for r in ExitReason if r is not ExitReason.TRAILING)
EXCHANGE_WHERE = "exchange"  # the `where` of errors ops/metered.py counts at the port
# What the exchange port raises.
EXCHANGE_ERRORS = tuple(
    e.__name__
    for e in (
        RetryLater,
        RateLimited,
        IpBanned,
        OperatorActionRequired,
        OrderRejected,
        OrderStateUnknown,
        MarketDataError,
    )
)
NOTIFICATION_OUTCOMES = ("sent", "failed", "dropped")  # ops/notify.py
STATUS_CLOSED_REASONS = ("cap", "timeout")  # ops/server_guard.py


def verdict_labels() -> list[tuple[str, str, str]]:
    """(gate, reason, approved) of every listed verdict."""
    return [
        (gate.value, reason.value, "true" if reason is ReasonCode.APPROVED else "false")
        for gate, reasons in VERDICTS.items()
        for reason in reasons
    ]
