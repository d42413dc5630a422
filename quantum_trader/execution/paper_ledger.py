"""The paper account's bookkeeping: taker fills, isolated margin, funding, balance, positions.

Synchronous and clock-free: every method takes the instant (`now_ms`) it acts at. Money is
Decimal, rounded to 1e-8 USDT when it reaches the wallet, so the invariant
wallet = initial + realized PnL − fees − funding holds exactly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import (
    ZERO,
    Balance,
    ExchangePosition,
    Fill,
    MarketRules,
    OrderSide,
    Side,
)
from quantum_trader.execution.paper_markets import PriceTape, to_decimal
from quantum_trader.execution.paper_retention import note_holding
from quantum_trader.execution.paper_state import PaperPosition, PaperState
from quantum_trader.record import record
from quantum_trader.sizing.costs import CostModel

USDT_QUANTUM = Decimal("0.00000001")
PRICE_QUANTUM = Decimal("1e-12")


def _entry_time(entry: tuple[int, Decimal]) -> int:
    return entry[0]


def usdt(amount: Decimal) -> Decimal:
    """Round money to the ledger's 1e-8 USDT."""
    return amount.quantize(USDT_QUANTUM)


@record
class FillPlan:
    """How an order of `quantity` at `price` would change a symbol's position."""

    closing: Decimal
    opening: Decimal
    realized_pnl_usdt: Decimal
    released_margin_usdt: Decimal
    fee_usdt: Decimal


class Ledger:
    """Applies fills and funding to a `PaperState`; knows rules, tapes and costs. The state's
    positions and leverages change only through it (`execute`, `set_leverage`)."""

    def __init__(
        self,
        state: PaperState,
        rules: Mapping[str, MarketRules],
        tapes: Mapping[str, PriceTape],
        costs: CostModel,
    ) -> None:
        self.state = state
        self.rules = rules
        self.tapes = tapes
        self.costs = costs
        # The last valuation price per symbol, (now_ms, price): a step values the account
        # several times at one instant (balance, positions), and the tapes never change.
        self._valued: dict[str, tuple[int, Decimal]] = {}
        # Each open position's margin and their sum (`_held_margins`), until a fill or a
        # change of leverage (`execute`, `set_leverage`: the only ways either moves).
        self._margins: tuple[dict[str, Decimal], Decimal] | None = None

    def leverage(self, symbol: str) -> int:
        return self.state.leverage.get(symbol, 1)

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Margin the symbol's position, now and later, at `leverage`."""
        self.state.leverage[symbol] = leverage
        self._margins = None

    def margin(self, symbol: str) -> Decimal:
        """Isolated margin of the symbol's position: entry notional / leverage."""
        return self._held_margins()[0].get(symbol, ZERO)

    def used_margin(self) -> Decimal:
        return self._held_margins()[1]

    def _held_margins(self) -> tuple[dict[str, Decimal], Decimal]:
        """Each open position's margin, and their sum in the positions' order: kept from one
        fill or change of leverage to the next, being price-independent (a backtest asks for
        the balance at every step it checks; a margin costs ≈ 3,400 instructions)."""
        if self._margins is None:
            state, used = self.state, ZERO
            margins = {}
            for symbol, position in state.positions.items():
                leverage = state.leverage.get(symbol, 1)
                margins[symbol] = usdt(position.quantity * position.entry_price / leverage)
                used += margins[symbol]
            self._margins = margins, used
        return self._margins

    def free(self) -> Decimal:
        return self.state.wallet_usdt - self.used_margin()

    def taker_price(
        self, symbol: str, side: OrderSide, base: Decimal, quantity: Decimal, now_ms: int
    ) -> Decimal:
        """Move `base` against the taker by the cost model's slippage; round against it too."""
        atr_pct = self.tapes[symbol].atr_pct_at(now_ms)
        rate = Decimal(repr(self.costs.slippage_rate(float(quantity * base), atr_pct)))
        rules = self.rules[symbol]
        if side is OrderSide.BUY:
            raw, rounding = base * (1 + rate), ROUND_CEILING
        else:
            raw, rounding = base * (1 - rate), ROUND_FLOOR
        ticks = (raw / rules.tick_size).to_integral_value(rounding)
        return max(ticks, Decimal(1)) * rules.tick_size

    def market_price(self, symbol: str, now_ms: int) -> Decimal:
        """The last recorded price at `now_ms` on the symbol's tick, for valuation.

        Raises MarketDataError before the recording."""
        valued = self._valued.get(symbol)
        if valued is not None and valued[0] == now_ms:
            return valued[1]
        return self._valued_at(symbol, now_ms, self.tapes[symbol].price_at(now_ms))

    def fill_price(self, symbol: str, now_ms: int) -> Decimal:
        """The price a market order fills at now; MarketDataError inside a gap in the data.

        Outside a gap it is the valuation price (`tradeable_price_at` answers `price_at`
        wherever it answers), so the two share `market_price`'s memory of the instant."""
        price = self.tapes[symbol].tradeable_price_at(now_ms)  # raises inside a gap
        valued = self._valued.get(symbol)
        if valued is not None and valued[0] == now_ms:
            return valued[1]
        return self._valued_at(symbol, now_ms, price)

    def _valued_at(self, symbol: str, now_ms: int, price: float) -> Decimal:
        """`price`, the tape's at `now_ms`, on the symbol's tick, remembered for the instant."""
        rounded = self.rules[symbol].round_price(to_decimal(price))
        self._valued[symbol] = (now_ms, rounded)
        return rounded

    def plan(self, symbol: str, side: OrderSide, quantity: Decimal, price: Decimal) -> FillPlan:
        """Split an order into the part that closes the position and the part that opens."""
        position = self.state.positions.get(symbol)
        fee = usdt(quantity * price * Decimal(repr(self.costs.fee_rate(is_maker=False))))
        if position is None or position.side.entry_order_side is side:
            return FillPlan(ZERO, quantity, ZERO, ZERO, fee)
        closing = min(quantity, position.quantity)
        pnl = usdt((price - position.entry_price) * position.side.sign * closing)
        released = usdt(closing * position.entry_price / self.leverage(symbol))
        return FillPlan(closing, quantity - closing, pnl, released, fee)

    def required_margin(self, symbol: str, plan: FillPlan, price: Decimal) -> Decimal:
        """Margin the opening part locks, at the symbol's leverage."""
        return usdt(plan.opening * price / self.leverage(symbol))

    def execute(
        self,
        client_order_id: str,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        price: Decimal,
        now_ms: int,
    ) -> Fill:
        """Fill `quantity` at `price` as a taker: realize PnL, pay the fee, move the position."""
        state = self.state
        plan = self.plan(symbol, side, quantity, price)
        self._margins = None  # the position moves
        position = state.positions.get(symbol)
        held_before = position is not None
        if position is not None and plan.closing > 0:
            position.quantity -= plan.closing
            if position.quantity == 0:
                del state.positions[symbol]
        if plan.opening > 0:
            self._open(symbol, Side.LONG if side is OrderSide.BUY else Side.SHORT, plan, price)
        state.realized_pnl_usdt += plan.realized_pnl_usdt
        state.fees_usdt += plan.fee_usdt
        state.wallet_usdt += plan.realized_pnl_usdt - plan.fee_usdt
        fill = Fill(
            trade_id=f"paper-t{state.next_trade_no}",
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            fee_usdt=plan.fee_usdt,
            time=utc_from_ms(now_ms),
        )
        state.next_trade_no += 1
        state.fills.setdefault(client_order_id, []).append(fill)
        if (symbol in state.positions) is not held_before:
            note_holding(state, symbol, not held_before, now_ms)
        return fill

    def _open(self, symbol: str, side: Side, plan: FillPlan, price: Decimal) -> None:
        position = self.state.positions.get(symbol)
        if position is None:
            self.state.positions[symbol] = PaperPosition(side, plan.opening, price)
            return
        total = position.quantity + plan.opening
        average = (position.quantity * position.entry_price + plan.opening * price) / total
        position.entry_price = average.quantize(PRICE_QUANTUM)
        position.quantity = total

    def settle_funding(self, symbol: str, index: int) -> None:
        """Apply funding settlement `index` of `symbol` to its open position, if any.

        Paid = notional at the settlement's price × rate × side sign (longs pay a positive rate).
        """
        position = self.state.positions.get(symbol)
        tape = self.tapes[symbol]
        if position is None or tape.funding is None:
            return
        time_ms = int(tape.funding.time_ms[index])
        rate = Decimal(repr(float(tape.funding.rate[index])))
        price = to_decimal(tape.price_at(time_ms))
        paid = usdt(position.quantity * price * rate * position.side.sign)
        self.state.funding.setdefault(symbol, []).append((time_ms, paid))
        self.state.funding_usdt += paid
        self.state.wallet_usdt -= paid

    def funding_paid(self, symbol: str, since_ms: int) -> Decimal:
        """Funding paid on the symbol at or after `since_ms`. The entries are in time order
        (booked as they fall due, sorted when loaded): a position's own are the tail, found
        by bisection so that closing a trade does not cost the whole history's length."""
        entries = self.state.funding.get(symbol, [])
        first = bisect_left(entries, since_ms, key=_entry_time)
        return sum((amount for _, amount in entries[first:]), ZERO)

    def balance(self, now_ms: int) -> Balance:
        return self.balance_at({s: self.market_price(s, now_ms) for s in self.state.positions})

    def balance_at(self, prices: Mapping[str, Decimal]) -> Balance:
        """The balance with each open position valued at its symbol's price in `prices`: the
        margins as kept (`_held_margins`), unrealized PnL as `positions` computes it (the same
        expression, summed in the positions' order; asked at every step checked)."""
        state = self.state
        used, unrealized = self._held_margins()[1], ZERO
        for symbol, position in state.positions.items():
            quantity, entry = position.quantity, position.entry_price
            unrealized += usdt((prices[symbol] - entry) * position.side.sign * quantity)
        # By position (wallet, free, used margin, unrealized PnL): a class called with
        # keywords builds a dict of them (≈ 3,000 instructions; asked at every step checked).
        return Balance(state.wallet_usdt, state.wallet_usdt - used, used, unrealized)

    def positions(self, now_ms: int) -> list[ExchangePosition]:
        """Every open position, by symbol; margin as `margin` answers it, unrealized PnL as
        `balance_at` computes it (the same expression, inlined: asked every step)."""
        held, margins = [], self._held_margins()[0]
        for symbol, position in sorted(self.state.positions.items()):
            leverage = self.state.leverage.get(symbol, 1)
            quantity, entry = position.quantity, position.entry_price
            price = self.market_price(symbol, now_ms)
            unrealized = usdt((price - entry) * position.side.sign * quantity)
            # By position, as `balance_at` makes its `Balance`.
            held.append(
                ExchangePosition(
                    symbol, position.side, quantity, entry, leverage, margins[symbol], unrealized
                )
            )
        return held
