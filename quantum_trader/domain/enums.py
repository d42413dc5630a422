"""Closed vocabularies. Values are stable: they are written to logs and the database.

In Python 3.11 a member read through its class (`Side.LONG`) costs ≈ 10 × a global's read:
`EnumType` defines `__getattr__`, so every attribute read on an enum class goes through the
slow lookup hook (3.12 dropped it). Code a backtest runs at every step (the stop maths, the
gates, the cycle) keeps the members it compares with in module constants (`_LONG =
Side.LONG`), or reads what it needs on the member itself (`Action.side`, `Side.sign`): a
two-week replay read ≈ 77,000 members through their classes (≈ 2.5 % of its instructions;
`python -m benchmarks.enum_reads` counts them by site)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class Side(StrEnum):
    """Direction of a position."""

    LONG = "LONG"
    SHORT = "SHORT"

    # Kept on the member, not computed by properties: read hundreds of thousands of times in
    # a year's backtest (`sign` 884k), and an enum's property with its class lookup took
    # 100 ns where an attribute takes 28.
    sign: Final[int]  # +1 for a long, -1 for a short: a price move times it has the PnL's sign
    entry_order_side: Final[OrderSide]
    exit_order_side: Final[OrderSide]

    def __init__(self, value: str) -> None:
        long = value == "LONG"
        self.sign = 1 if long else -1
        self.entry_order_side = OrderSide.BUY if long else OrderSide.SELL
        self.exit_order_side = OrderSide.SELL if long else OrderSide.BUY


class Action(StrEnum):
    """What a signal source recommends for a symbol."""

    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"

    side: Final[Side | None]  # the position it opens; on the member (see `Side`)

    def __init__(self, value: str) -> None:
        self.side = {"BUY": Side.LONG, "SELL": Side.SHORT}.get(value)


class OrderKind(StrEnum):
    """MARKET is a plain order; the other two are conditional (Binance algo) orders."""

    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"

    is_conditional: Final[bool]  # on the member (see `Side`)

    def __init__(self, value: str) -> None:
        self.is_conditional = value != "MARKET"


class OrderStatus(StrEnum):
    """PENDING is our intent, written before the request leaves; UNKNOWN needs reconciliation."""

    PENDING = "PENDING"
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    is_final: Final[bool]  # nothing more will happen to the order; on the member (see `Side`)

    def __init__(self, value: str) -> None:
        self.is_final = value in ("FILLED", "CANCELED", "REJECTED", "EXPIRED")


class ExitReason(StrEnum):
    SL_HIT = "SL_HIT"
    TP_HIT = "TP_HIT"
    TRAILING_HIT = "TRAILING_HIT"
    TRAILING = "TRAILING"  # the managed stop trailed (an adjustment, not an exit)
    BREAK_EVEN = "BREAK_EVEN"
    PARTIAL_TP = "PARTIAL_TP"
    TIME_EXIT = "TIME_EXIT"
    EMERGENCY = "EMERGENCY"
    MANUAL = "MANUAL"  # closed outside the program: by hand, or by Binance unnamed
    PROTECTION_FAILED = "PROTECTION_FAILED"
    LIQUIDATION = "LIQUIDATION"  # closed outside the program by Binance's liquidation
    ADL = "ADL"  # closed outside the program by Binance's auto-deleveraging
    # An entry that filled at or past its own target or stop, exited at once; or the part of
    # one whose fill risked more than the risk guard's per-trade cap (keeper/fill_check.py).
    FILL_OFF_PLAN = "FILL_OFF_PLAN"


class Regime(StrEnum):
    """Per-symbol market regime (SPEC §3.2)."""

    TRENDING = "TRENDING"
    RANGING = "RANGING"
    CHOPPY = "CHOPPY"
    BREAKOUT = "BREAKOUT"


class GlobalRegime(StrEnum):
    """BTC against its daily EMA200 (SPEC §3.3)."""

    UPTREND = "UPTREND"
    DOWNTREND = "DOWNTREND"
    SIDEWAYS = "SIDEWAYS"


class ExitMode(StrEnum):
    TREND_FOLLOW = "TREND_FOLLOW"
    DEFENSIVE_TRAIL = "DEFENSIVE_TRAIL"


class TrailMode(StrEnum):
    """ATR multiple of the trailing distance (SPEC §6)."""

    AGGRESSIVE = "AGGRESSIVE"
    BALANCED = "BALANCED"
    LOOSE = "LOOSE"


class GateName(StrEnum):
    SIGNAL_FILTER = "signal_filter"
    ORCHESTRATOR = "orchestrator"
    BALANCER = "balancer"
    GOVERNOR = "governor"
    SIZER = "sizer"
    RISK_GUARD = "risk_guard"
    EXECUTION = "execution"


class ReasonCode(StrEnum):
    """Why a gate allowed or denied a candidate. Stable: logs, database and status use them."""

    APPROVED = "APPROVED"
    # signal filter
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    HOLD = "HOLD"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    # risk guard (SPEC §4.4)
    INSUFFICIENT_FREE_BALANCE = "INSUFFICIENT_FREE_BALANCE"
    BALANCE_BELOW_MINIMUM = "BALANCE_BELOW_MINIMUM"
    LEVERAGE_TOO_HIGH = "LEVERAGE_TOO_HIGH"
    MARGIN_PER_TRADE_EXCEEDED = "MARGIN_PER_TRADE_EXCEEDED"
    NOTIONAL_EXPOSURE_EXCEEDED = "NOTIONAL_EXPOSURE_EXCEEDED"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    RISK_PER_TRADE_EXCEEDED = "RISK_PER_TRADE_EXCEEDED"
    REWARD_RISK_TOO_LOW = "REWARD_RISK_TOO_LOW"
    BELOW_MIN_QUANTITY = "BELOW_MIN_QUANTITY"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    ABOVE_MAX_QUANTITY = "ABOVE_MAX_QUANTITY"  # Binance -4005, market orders: MARKET_LOT_SIZE
    BAD_PRECISION = "BAD_PRECISION"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_ORDER = "INVALID_ORDER"
    # portfolio balancer (SPEC §4.2)
    CRITICAL_VIOLATIONS = "CRITICAL_VIOLATIONS"
    POSITION_ALREADY_OPEN = "POSITION_ALREADY_OPEN"
    MAX_POSITIONS_REACHED = "MAX_POSITIONS_REACHED"
    MAX_LONGS = "MAX_LONGS"
    MAX_SHORTS = "MAX_SHORTS"
    TOTAL_RISK_EXCEEDED = "TOTAL_RISK_EXCEEDED"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    SECTOR_OVEREXPOSED = "SECTOR_OVEREXPOSED"
    HIGH_CORRELATION = "HIGH_CORRELATION"
    LOW_PRIORITY = "LOW_PRIORITY"
    SYMBOL_OVERCONCENTRATED = "SYMBOL_OVERCONCENTRATED"
    NET_EXPOSURE_EXCEEDED = "NET_EXPOSURE_EXCEEDED"
    # orchestrator policy (SPEC §4.1)
    DAILY_DRAWDOWN_LIMIT = "DAILY_DRAWDOWN_LIMIT"
    CHOPPY_LOW_CONFIDENCE = "CHOPPY_LOW_CONFIDENCE"
    BELOW_DYNAMIC_CONFIDENCE = "BELOW_DYNAMIC_CONFIDENCE"
    SYMBOL_LOW_WIN_RATE = "SYMBOL_LOW_WIN_RATE"
    SYMBOL_DISABLED = "SYMBOL_DISABLED"
    SYMBOL_BLACKLISTED = "SYMBOL_BLACKLISTED"
    # the symbol's last trade closed FILL_OFF_PLAN: no entry until its hold ends
    SYMBOL_HELD_AFTER_FILL_OFF_PLAN = "SYMBOL_HELD_AFTER_FILL_OFF_PLAN"
    SHORT_IN_UPTREND = "SHORT_IN_UPTREND"
    # safety governor (SPEC §4.3)
    NO_NEW_TRADES = "NO_NEW_TRADES"
    PAUSED = "PAUSED"
    EMERGENCY_SHUTDOWN = "EMERGENCY_SHUTDOWN"
    HALTED = "HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    # the operator paused new entries (`quantum-trader pause` or `close-all`) until `resume`
    OPERATOR_PAUSED = "OPERATOR_PAUSED"
    # sizer
    SIZE_ZERO = "SIZE_ZERO"
    LIFECYCLE_PAPER = "LIFECYCLE_PAPER"
    STAGE_CAP_REACHED = "STAGE_CAP_REACHED"
    # execution
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_FAILED = "ORDER_FAILED"
    # Binance -4130: a close-all (closePosition) order already holds the symbol's side
    CLOSE_ALL_EXISTS = "CLOSE_ALL_EXISTS"
    # Binance -4509: a close-all order (time in force GTE) with no position open
    NO_POSITION_FOR_CLOSE_ALL = "NO_POSITION_FOR_CLOSE_ALL"
    # an order of ours on the symbol has an unknown outcome: no entry until it is settled
    ORDER_UNSETTLED = "ORDER_UNSETTLED"


class ExchangeMode(StrEnum):
    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"
