"""Exchange rules for one market and the bar arrays the core computes on."""

from __future__ import annotations

import math
from dataclasses import field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import numpy as np
import numpy.typing as npt

from quantum_trader.record import record

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@record
class LeverageBracket:
    """One of Binance's notional brackets: up to `initial_leverage` for a position whose
    notional (USDT) is in [notional_floor, notional_cap)."""

    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal


@record
class LotSize:
    """Quantity limits of one order type: Binance's LOT_SIZE (limit orders) or MARKET_LOT_SIZE
    (market orders) filter. `max_quantity` None: no maximum known."""

    min_quantity: Decimal
    step_size: Decimal
    max_quantity: Decimal | None = None

    def exceeded_by(self, quantity: Decimal) -> bool:
        return self.max_quantity is not None and quantity > self.max_quantity

    def round_down(self, quantity: Decimal) -> Decimal:
        """Round down to the step: rounding must never increase the risk taken."""
        return (quantity / self.step_size).to_integral_value(ROUND_DOWN) * self.step_size

    def is_on_step(self, quantity: Decimal) -> bool:
        return quantity % self.step_size == 0

    def round_up_to_fit(self, quantity: Decimal) -> Decimal:
        """The smallest quantity on the step, at least `quantity` and the minimum."""
        steps = (max(quantity, self.min_quantity) / self.step_size).to_integral_value(ROUND_UP)
        return steps * self.step_size

    def cap(self, quantity: Decimal) -> Decimal:
        """`quantity`, at most the maximum rounded down to the step."""
        if self.max_quantity is None or quantity <= self.max_quantity:
            return quantity
        return self.round_down(self.max_quantity)


@record
class MarketOrderLot:
    """What a market order's quantity must meet, and the filter each limit comes from (named
    in refusals). `lot.step_size` is the smallest multiple of both filters' steps (the coarser
    where one is a multiple of the other) and `lot.min_quantity` the larger minimum: the paper
    exchange checks LOT_SIZE and MARKET_LOT_SIZE alike, so meeting both is never refused."""

    lot: LotSize
    step_filter: str
    minimum_filter: str
    maximum_filter: str


LOT_SIZE = "LOT_SIZE"
MARKET_LOT_SIZE = "MARKET_LOT_SIZE"


def common_step(first: Decimal, second: Decimal) -> Decimal:
    """The smallest positive multiple of both steps (> 0), as one of them where it is one."""
    exponent = min(int(first.as_tuple().exponent), int(second.as_tuple().exponent))
    units = math.lcm(int(first.scaleb(-exponent)), int(second.scaleb(-exponent)))
    common = Decimal(units).scaleb(exponent)
    return next((step for step in (first, second) if step == common), common)


@record
class MarketRules:
    """Precision and limits of one USD-M perpetual, as the exchange defines them.

    `step_size`, `min_quantity` and `max_quantity` are the LOT_SIZE filter's (limit orders);
    `market_lot` the MARKET_LOT_SIZE filter's (market orders, entries and closes alike: on
    Binance its maxQty is usually far below LOT_SIZE's, BTCUSDT 120 against 1000, and a market
    order above it is refused with -4005 "Quantity greater than max quantity."). None when
    the rules source has no MARKET_LOT_SIZE: `market_lot_size` is then LOT_SIZE's limits.
    `leverage_brackets` (lowest floor first) are Binance's leverage brackets when they were
    read; empty, `max_leverage` bounds every notional."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    max_leverage: int = 125
    leverage_brackets: tuple[LeverageBracket, ...] = ()
    max_quantity: Decimal | None = None
    market_lot: LotSize | None = None
    # `market_order_lot`, made once with the rules from their own fields: read for every stop
    # placed and every entry sized, and its common step costs more than what reads it.
    _order_lot: MarketOrderLot = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_order_lot", self._made_order_lot())

    @property
    def market_lot_size(self) -> LotSize:
        """The quantity limits of a market order (MARKET_LOT_SIZE, else LOT_SIZE's)."""
        if self.market_lot is not None:
            return self.market_lot
        return LotSize(self.min_quantity, self.step_size, self.max_quantity)

    @property
    def market_order_lot(self) -> MarketOrderLot:
        """The limits an entry (a market order) is sized to: MARKET_LOT_SIZE's step, minimum
        and maximum, each at least LOT_SIZE's step and minimum; LOT_SIZE's alone without it."""
        return self._order_lot

    def _made_order_lot(self) -> MarketOrderLot:
        market = self.market_lot
        if market is None:
            lot = LotSize(self.min_quantity, self.step_size, self.max_quantity)
            return MarketOrderLot(lot, LOT_SIZE, LOT_SIZE, LOT_SIZE)
        step = common_step(self.step_size, market.step_size)
        minimum = max(self.min_quantity, market.min_quantity)
        return MarketOrderLot(
            LotSize(minimum, step, market.max_quantity),
            MARKET_LOT_SIZE if step == market.step_size else LOT_SIZE,
            MARKET_LOT_SIZE if minimum == market.min_quantity else LOT_SIZE,
            MARKET_LOT_SIZE,
        )

    @property
    def notional_cap(self) -> Decimal | None:
        """The last leverage bracket's cap, USDT: Binance takes no position of this notional
        or more. None without brackets."""
        return self.leverage_brackets[-1].notional_cap if self.leverage_brackets else None

    def max_leverage_for(self, notional_usdt: Decimal) -> int:
        """The highest leverage allowed at `notional_usdt`: its bracket's, at most
        `max_leverage`; 0 beyond the last bracket's cap (Binance takes no such position)."""
        if not self.leverage_brackets:
            return self.max_leverage
        for bracket in self.leverage_brackets:
            if notional_usdt < bracket.notional_cap:
                return min(bracket.initial_leverage, self.max_leverage)
        return 0

    def round_price(self, price: Decimal) -> Decimal:
        """Round to the nearest tick."""
        return (price / self.tick_size).to_integral_value(ROUND_HALF_EVEN) * self.tick_size

    def round_quantity_down(self, quantity: Decimal) -> Decimal:
        """Round down to the step: rounding must never increase the risk taken."""
        return (quantity / self.step_size).to_integral_value(ROUND_DOWN) * self.step_size

    def is_price_precise(self, price: Decimal) -> bool:
        return price % self.tick_size == 0

    def is_quantity_precise(self, quantity: Decimal) -> bool:
        return quantity % self.step_size == 0


@record
class Bars:
    """OHLCV of one symbol and timeframe, oldest first. `time_ms` is each bar's open time (UTC)."""

    symbol: str
    timeframe_ms: int
    time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(
            self.symbol,
            self.timeframe_ms,
            self.time_ms[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    def take(self, rows: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Bars:
        """The bars at `rows`, an index array or a boolean mask (a copy, unlike `slice`)."""
        return Bars(
            self.symbol,
            self.timeframe_ms,
            self.time_ms[rows],
            self.open[rows],
            self.high[rows],
            self.low[rows],
            self.close[rows],
            self.volume[rows],
        )

    def closed_before(self, now_ms: int) -> int:
        """Number of bars whose close time (open + timeframe) is at or before `now_ms`."""
        return int(np.searchsorted(self.time_ms, now_ms - self.timeframe_ms, side="right"))


@record
class SignalSeries:
    """A signal source's output over a symbol's bars, aligned with them (one row per bar).

    `action` holds +1 BUY, -1 SELL, 0 HOLD; row t may depend only on bars 0..t (no look-ahead).
    `votes` maps a model name to its own (action, confidence) rows, for the audit log.
    """

    action: npt.NDArray[np.int8]
    confidence: FloatArray
    votes: dict[str, tuple[npt.NDArray[np.int8], FloatArray]]


@record
class MarketSnapshot:
    """Closed bars per symbol (trailing window) and funding rates, as of `time_ms`."""

    time_ms: int
    bars: dict[str, Bars]
    funding_rate_8h: dict[str, float]
