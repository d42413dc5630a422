"""The stand-in's matching engine: market orders fill at the mark price (or partly, when a
test says so), reduce-only orders never grow a position, and conditional orders rest until
the mark price crosses their trigger (workingType MARK_PRICE; CONTRACT_PRICE uses the same
price here), then run as a market order: ALGO_UPDATE TRIGGERING → TRIGGERED → FINISHED with
the actual order's id, average price and executed quantity. Every change is pushed as the
user-data events Binance sends (ORDER_TRADE_UPDATE, ALGO_UPDATE, ACCOUNT_UPDATE).

`fill_market_later_ms` answers a market order NEW with nothing executed and executes it at the
first request (or stream push) that much later on the stand-in's clock: Binance has answered
market orders so, newOrderRespType RESULT or not (ccxt/node-binance-api#444: status NEW,
executedQty "0", avgPrice "0.00000" for an order that had filled); the fill then comes as
ORDER_TRADE_UPDATE and in the order query.

`strict_reduce_only` refuses a reduce-only TAKE_PROFIT_MARKET larger than the position when it
fires instead of executing what is held, as Binance's FAQ "Summary of Failed Orders in Binance
Futures" reads; its MARKET and STOP_MARKET exemption is kept either way: see `Engine`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from . import force_orders, payloads
from .markets import LoopbackMarket
from .state import BinanceError, LoopbackState

CONDITIONAL_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
# Reduce-only orders Binance's FAQ lets close a position smaller than their size (`Engine`).
LARGER_THAN_POSITION_EXEMPT = ("MARKET", "STOP_MARKET")
# The default of `Engine.strict_reduce_only`; QT_LOOPBACK_STRICT_REDUCE_ONLY=1 turns it on for
# every stand-in a process starts (a campaign's, say).
STRICT_REDUCE_ONLY = os.environ.get("QT_LOOPBACK_STRICT_REDUCE_ONLY") == "1"


@dataclass(frozen=True, slots=True)
class FillPlan:
    """Execute only `ratio` of a market order's quantity; the order ends `status`
    (EXPIRED, as a market order that ran out of book, or PARTIALLY_FILLED, left open).
    `price`: execute at this price, not the mark (a book thinner than the mark suggests, or
    a market that moved while the order travelled)."""

    ratio: Decimal
    status: str = "EXPIRED"
    price: Decimal | None = None


class Engine:
    """Places and triggers orders on a LoopbackState.

    `report_actual_order` False leaves the actual order id, price and quantity out of
    triggered conditional orders (REST and ALGO_UPDATE), as when Binance does not report them.
    `stall_triggers` True leaves a triggered conditional order in TRIGGERING for good, its
    market order never sent, as Binance's demo trading has done (a reduce-only stop stuck in
    TRIGGERING the next day, its position open; NautilusTrader discussion 5378, 2026-10);
    `resume_stalled` runs such orders' market orders at last, against whatever is held then.
    `triggered_fill` executes only that share of a triggered order's market order (None: all
    of it); the rest expires, as a market order that ran out of book: the algo order FINISHES
    with what executed, possibly nothing. `trades_per_execution` splits each execution into
    that many trades (as many as the quantity's steps allow), as a market order that meets
    many resting orders is reported: one userTrades row and one ORDER_TRADE_UPDATE each.
    `child_carries_algo_id` True gives a triggered conditional order's market order the
    conditional order's clientAlgoId as its clientOrderId (and its type as origType), as
    NautilusTrader saw on Binance (nautilus_trader#3287, #3664: an ORDER_TRADE_UPDATE under
    the algo order's client id); False (the default) gives it `algo-<algoId>`: Binance does
    not document which client id that order carries.
    `strict_reduce_only` True refuses a reduce-only order larger than the position, as
    Binance's FAQ "Summary of Failed Orders in Binance Futures" (article 360039707291) says
    ("the order is in the opposite direction and the size exceeds the open position"), but
    for the orders the same article exempts (its German version, our translation): "reduce-only
    market orders and reduce-only stop-market orders with an order size equal to or exceeding
    the open position have the highest priority and are not restricted by the above rules".
    So of the orders we send only a triggered TAKE_PROFIT_MARKET larger than what is
    held is refused: it ends REJECTED with nothing executed (as one with no position to
    reduce ends here), Binance documenting REJECTED as "denied by the matching engine", its
    ALGO_UPDATE example carrying `"rm": "Reduce Only reject"`, and EXPIRED as a
    cancellation by the system (a GTE order whose position closed).
    False (the default) executes what is held of every order, as the paper exchange does.
    Close-all (closePosition) orders are unaffected either way.
    """

    def __init__(self, state: LoopbackState, report_actual_order: bool = True) -> None:
        self.state = state
        self.report_actual_order = report_actual_order
        self.stall_triggers = False
        self.triggered_fill: FillPlan | None = None
        self.trades_per_execution = 1
        self.fill_market_later_ms: int | None = None
        self.child_carries_algo_id = False
        self.strict_reduce_only = STRICT_REDUCE_ONLY
        self._later: list[tuple[int, dict[str, Any], FillPlan | None]] = []  # (due ms, order)

    # -- market orders -------------------------------------------------------------------------

    def place_order(self, params: dict[str, str], fill: FillPlan | None = None) -> dict[str, Any]:
        s = self.state
        market = s.market(params)
        self._check_position_side(params)
        if params.get("type") != "MARKET":
            raise BinanceError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        quantity = _quantity(market, params)
        if quantity > Decimal(market.market_max_quantity):  # MARKET_LOT_SIZE, closes too
            raise BinanceError(-4005, "Quantity greater than max quantity.")
        reduce_only = params.get("reduceOnly") == "true"
        client_id = params.get("newClientOrderId") or f"auto{s.new_id()}"
        if client_id in s.orders:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        self._check_entry(market, params["side"], quantity, reduce_only)
        order = payloads.order_json(s.new_id(), client_id, params, quantity, s.now_ms)
        s.orders[client_id] = order
        s.emit(payloads.order_trade_update(order, "NEW", None, s.now_ms))
        if self.fill_market_later_ms is not None:  # answered NEW, executed later: see above
            self._later.append((s.now_ms + self.fill_market_later_ms, order, fill))
            return {**order, "avgPrice": "0.00"}
        self._execute_market(order, fill)
        if params.get("newOrderRespType") == "ACK":
            return {**order, "status": "NEW", "executedQty": "0", "avgPrice": "0"}
        return order

    def _execute_market(self, order: dict[str, Any], fill: FillPlan | None) -> None:
        market = self.state.markets[order["symbol"]]
        reduce_only = order["reduceOnly"]
        quantity = Decimal(order["origQty"])
        self._execute(
            market, order, self._executable(market, order, quantity, reduce_only, fill), fill
        )

    def _execute_due(self) -> None:
        """Execute the market orders answered NEW whose time has come (`fill_market_later_ms`)."""
        due = [(o, f) for at, o, f in self._later if at <= self.state.now_ms]
        self._later = [entry for entry in self._later if entry[0] > self.state.now_ms]
        for order, fill in due:
            self._execute_market(order, fill)

    def force_close(self, market_id: str, auto_close_type: str) -> dict[str, Any]:
        """The exchange closes the whole position on `market_id` itself, at the mark: a
        liquidation (LIQUIDATION: a LIMIT IOC order, as in Binance's example) or an
        auto-deleveraging (ADL: LIMIT GTC); listed by GET /fapi/v1/forceOrders and its trades
        by userTrades, as any order's. Returns the order."""
        s = self.state
        market = s.markets[market_id]
        held = s.holding(market_id).amount
        if held == 0:
            raise ValueError(f"no position on {market_id} to close")
        side = "SELL" if held > 0 else "BUY"
        order_id = s.new_id()
        client_id = force_orders.client_order_id(auto_close_type, s.now_ms, order_id)
        params = {"symbol": market_id, "side": side}
        order = payloads.order_json(order_id, client_id, params, abs(held), s.now_ms)
        kept = "IOC" if auto_close_type == "LIQUIDATION" else "GTC"
        price = str(s.mark(market_id))
        order.update(type="LIMIT", origType="LIMIT", timeInForce=kept, price=price)
        s.force_orders.append((order, auto_close_type))
        self._execute(market, order, abs(held), None)
        return order

    def fill_limit_by_hand(
        self, market_id: str, side: str, quantity: Decimal, client_id: str
    ) -> dict[str, Any]:
        """A person's LIMIT order (GTC at the mark, placed on Binance's site) that a taker
        met at once: filled whole as the maker and reported as Binance reports a LIMIT fill
        (ORDER_TRADE_UPDATE "o" LIMIT, "x" TRADE, "m" true; its userTrades row "maker" true,
        its commission at the maker rate). The REST order route here takes MARKET orders
        alone (ours). Returns the order."""
        s = self.state
        params = {"symbol": market_id, "side": side}
        order = payloads.order_json(s.new_id(), client_id, params, quantity, s.now_ms)
        order.update(type="LIMIT", origType="LIMIT", price=str(s.mark(market_id)))
        s.orders[client_id] = order
        s.emit(payloads.order_trade_update(order, "NEW", None, s.now_ms))
        self._execute(s.markets[market_id], order, quantity, None, maker=True)
        return order

    def _check_position_side(self, params: dict[str, str]) -> None:
        """Hedge mode wants positionSide LONG or SHORT; one-way mode BOTH (or none)."""
        side = params.get("positionSide", "BOTH")
        if self.state.dual_side_position == (side == "BOTH"):
            raise BinanceError(-4061, "Order's position side does not match user's setting.")

    def _refuses_beyond_position(self, order_type: str) -> bool:
        """A reduce-only `order_type` larger than the position is refused: see the class."""
        return self.strict_reduce_only and order_type not in LARGER_THAN_POSITION_EXEMPT

    def _check_entry(
        self, market: LoopbackMarket, side: str, quantity: Decimal, reduce_only: bool
    ) -> None:
        s = self.state
        holding = s.holding(market.market_id)
        if reduce_only:
            if holding.amount == 0 or (holding.amount > 0) == (side == "BUY"):
                raise BinanceError(-2022, "ReduceOnly Order is rejected.")
            return  # a MARKET one larger than the position closes it: `strict_reduce_only`
        notional = quantity * s.mark(market.market_id)
        if notional < Decimal(market.min_notional):
            raise BinanceError(
                -4164, f"Order's notional must be no smaller than {market.min_notional}"
            )
        if notional / holding.leverage > Decimal(s.account()["availableBalance"]):
            raise BinanceError(-2019, "Margin is insufficient.")

    def _executable(
        self,
        market: LoopbackMarket,
        order: dict[str, Any],
        quantity: Decimal,
        reduce_only: bool,
        fill: FillPlan | None,
    ) -> Decimal:
        if fill is not None:
            quantity = _round_down(quantity * fill.ratio, Decimal(market.step_size))
        if reduce_only:
            quantity = min(quantity, abs(self.state.holding(market.market_id).amount))
        return quantity

    def _execute(
        self,
        market: LoopbackMarket,
        order: dict[str, Any],
        quantity: Decimal,
        fill: FillPlan | None,
        maker: bool = False,
    ) -> None:
        """Fill `quantity` of `order` at the mark price (or the fill plan's) and report it,
        as the taker unless `maker`."""
        s = self.state
        price = s.mark(market.market_id) if fill is None or fill.price is None else fill.price
        ordered = Decimal(order["origQty"])
        trades = []
        if quantity > 0:
            signed = quantity if order["side"] == "BUY" else -quantity
            self._move_position(market, signed, price, maker)
            step = Decimal(market.step_size)
            for piece in _pieces(quantity, step, self.trades_per_execution):
                paid = s.commission(piece * price, maker)
                trades.append(
                    payloads.trade_json(s.new_id(), order, piece, price, s.now_ms, paid, maker)
                )
            s.trades.extend(trades)
        done = quantity == ordered
        partial = fill is not None and fill.status == "PARTIALLY_FILLED" and quantity > 0
        order.update(
            executedQty=str(quantity),
            cumQuote=str(quantity * price),
            avgPrice=str(price) if quantity > 0 else "0",
            status="FILLED" if done else ("PARTIALLY_FILLED" if partial else "EXPIRED"),
            updateTime=s.now_ms,
        )
        if trades:
            status = order["status"] if order["status"] != "EXPIRED" else "PARTIALLY_FILLED"
            executed = Decimal(0)
            for trade in trades:
                piece = Decimal(trade["qty"])
                executed += piece
                shown = {"executedQty": str(executed), "cumQuote": str(executed * price)}
                shown["status"] = status if executed == quantity else "PARTIALLY_FILLED"
                last = (piece, price, int(trade["id"]))
                paid = (trade["commission"], trade["commissionAsset"])
                shown_order = {**order, **shown}
                s.emit(
                    payloads.order_trade_update(shown_order, "TRADE", last, s.now_ms, paid, maker)
                )
            row = s.position_row(market.market_id)
            s.emit(payloads.account_update([row], s.wallet, "ORDER", s.now_ms))
            self._expire_close_all(market.market_id)
        if order["status"] == "EXPIRED":
            s.emit(payloads.order_trade_update(order, "EXPIRED", None, s.now_ms))

    def _move_position(
        self, market: LoopbackMarket, signed: Decimal, price: Decimal, maker: bool = False
    ) -> None:
        s = self.state
        holding = s.holding(market.market_id)
        if s.commission_asset == "USDT":  # a commission in BNB is not taken from USDT
            s.wallet -= abs(signed) * price * (payloads.MAKER_FEE if maker else payloads.TAKER_FEE)
        new_amount = holding.amount + signed
        if holding.amount == 0 or (holding.amount > 0) == (signed > 0):
            holding.entry = (holding.entry * abs(holding.amount) + price * abs(signed)) / abs(
                new_amount
            )
        else:
            closed = min(abs(signed), abs(holding.amount))
            s.wallet += (price - holding.entry) * closed * (1 if holding.amount > 0 else -1)
            if new_amount == 0:
                holding.entry = Decimal(0)
            elif (new_amount > 0) != (holding.amount > 0):  # a flip: the new side opened here
                holding.entry = price
        holding.amount = new_amount
        holding.update_ms = s.now_ms

    # -- conditional orders --------------------------------------------------------------------

    def place_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        s = self.state
        market = s.market(params)
        self._check_position_side(params)
        if params.get("algoType") != "CONDITIONAL" or "triggerPrice" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'triggerPrice' was not sent.")
        if params.get("type") not in CONDITIONAL_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        close_all = params.get("closePosition") == "true"
        quantity = self._close_all_checked(params) if close_all else _quantity(market, params)
        client_id = params.get("clientAlgoId") or f"auto{s.new_id()}"
        if client_id in s.algo_orders:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        order = payloads.algo_json(s.new_id(), client_id, params, quantity, s.now_ms)
        if self._crossed(order):
            raise BinanceError(-2021, "Order would immediately trigger.")
        s.algo_orders[client_id] = order
        s.emit(payloads.algo_update(order, s.now_ms))
        return order

    def _close_all_checked(self, params: dict[str, str]) -> Decimal:
        """A closePosition (Close-All) order: no quantity or reduceOnly beside it, one per
        symbol and side (Binance's -4130), and only beside a position it closes (time in force
        GTE: -4509; `_expire_close_all` ends it with that position)."""
        for name in ("quantity", "reduceOnly"):
            if name in params:
                raise BinanceError(-1106, f"Parameter '{name.lower()}' sent when not required.")
        if not self._closes(params["symbol"], params["side"]):
            raise BinanceError(
                -4509, "Time in Force (TIF) GTE can only be used with open positions."
            )
        if any(
            o["closePosition"] and o["algoStatus"] == "NEW"
            and (o["symbol"], o["side"]) == (params["symbol"], params["side"])
            for o in self.state.algo_orders.values()
        ):  # fmt: skip
            raise BinanceError(
                -4130,
                "An open stop or take profit order with GTE and closePosition in the "
                "direction is existing.",
            )
        return Decimal(0)

    def _closes(self, market_id: str, side: str) -> bool:
        """Whether the position held of `market_id` is one an order on `side` reduces."""
        amount = self.state.holding(market_id).amount
        return amount != 0 and (amount > 0) == (side == "SELL")

    def _expire_close_all(self, market_id: str) -> None:
        """End the resting close-all orders of `market_id` no position held would be closed by
        (Binance ends GTE orders with their position)."""
        s = self.state
        for algo in s.algo_orders.values():
            if (
                algo["closePosition"]
                and algo["algoStatus"] == "NEW"
                and algo["symbol"] == market_id
                and not self._closes(market_id, algo["side"])
            ):
                algo.update(algoStatus="EXPIRED", updateTime=s.now_ms)
                s.emit(payloads.algo_update(algo, s.now_ms))

    def cancel_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        s = self.state
        order = s.algo_orders.get(params.get("clientAlgoId", ""))
        if order is None or order["algoStatus"] != "NEW":
            raise BinanceError(-2011, "Unknown order sent.")
        order.update(algoStatus="CANCELED", updateTime=s.now_ms)
        s.emit(payloads.algo_update(order, s.now_ms))
        return {
            "algoId": order["algoId"],
            "clientAlgoId": order["clientAlgoId"],
            "code": "200",
            "msg": "success",
        }

    def sync(self) -> None:
        """Execute the market orders due (`fill_market_later_ms`), then trigger every resting
        conditional order the mark price has crossed."""
        self._execute_due()
        for order in list(self.state.algo_orders.values()):
            if order["algoStatus"] == "NEW" and self._crossed(order):
                self._trigger(order)

    def _crossed(self, order: dict[str, Any]) -> bool:
        mark = self.state.mark(order["symbol"])
        trigger = Decimal(order["triggerPrice"])
        sells = order["side"] == "SELL"
        if order["orderType"] == "STOP_MARKET":
            return mark <= trigger if sells else mark >= trigger
        return mark >= trigger if sells else mark <= trigger

    def _trigger(self, algo: dict[str, Any]) -> None:
        s = self.state
        algo.update(algoStatus="TRIGGERING", triggerTime=s.now_ms, updateTime=s.now_ms)
        s.emit(payloads.algo_update(algo, s.now_ms))
        if not self.stall_triggers:
            self._run_triggered(algo)

    def resume_stalled(self) -> None:
        """Run every conditional order left in TRIGGERING (`stall_triggers`) now."""
        for algo in list(self.state.algo_orders.values()):
            if algo["algoStatus"] == "TRIGGERING":
                self._run_triggered(algo)

    def _run_triggered(self, algo: dict[str, Any]) -> None:
        """Send a triggered order's market order (reduce-only: at most what is held; a
        close-all one: what is held)."""
        s = self.state
        market = s.markets[algo["symbol"]]
        holding = s.holding(market.market_id)
        closes = holding.amount != 0 and (holding.amount > 0) == (algo["side"] == "SELL")
        # A close-all order's market order is for whatever is held when it fires.
        ordered = abs(holding.amount) if algo["closePosition"] else Decimal(algo["quantity"])
        quantity = ordered
        if algo["reduceOnly"]:
            quantity = min(quantity, abs(holding.amount)) if closes else Decimal(0)
            if self._refuses_beyond_position(algo["orderType"]) and ordered > abs(holding.amount):
                quantity = Decimal(0)  # refused whole: see `strict_reduce_only`
        if quantity == 0:
            algo.update(algoStatus="REJECTED", updateTime=s.now_ms)
            s.emit(payloads.algo_update(algo, s.now_ms))
            return
        params = {"symbol": algo["symbol"], "side": algo["side"],
                  "reduceOnly": "true" if algo["reduceOnly"] else "false"}  # fmt: skip
        child_id = f"algo-{algo['algoId']}"
        if self.child_carries_algo_id:
            child_id = algo["clientAlgoId"]
        order = payloads.order_json(s.new_id(), child_id, params, ordered, s.now_ms)
        if self.child_carries_algo_id:
            order["origType"] = algo["orderType"]
        s.orders[order["clientOrderId"]] = order
        if self.report_actual_order:
            algo["actualOrderId"] = str(order["orderId"])
        algo.update(algoStatus="TRIGGERED", updateTime=s.now_ms)
        s.emit(payloads.algo_update(algo, s.now_ms))
        s.emit(payloads.order_trade_update(order, "NEW", None, s.now_ms))
        fill = self.triggered_fill
        if fill is not None:
            quantity = _round_down(quantity * fill.ratio, Decimal(market.step_size))
        self._execute(market, order, quantity, fill)
        executed = (Decimal(order["executedQty"]), Decimal(order["avgPrice"]))
        if self.report_actual_order:
            algo["actualPrice"] = order["avgPrice"]
        algo.update(algoStatus="FINISHED", updateTime=s.now_ms)
        s.emit(payloads.algo_update(algo, s.now_ms, executed if self.report_actual_order else None))


def _quantity(market: LoopbackMarket, params: dict[str, str]) -> Decimal:
    quantity = Decimal(params["quantity"])
    if quantity <= 0 or quantity % Decimal(market.step_size) != 0:
        raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    if quantity < Decimal(market.min_quantity):
        raise BinanceError(-4004, "Quantity less than min quantity.")
    return quantity


def _pieces(quantity: Decimal, step: Decimal, count: int) -> list[Decimal]:
    """`quantity` in `count` pieces of whole steps (fewer when it has fewer steps)."""
    count = max(1, min(count, int(quantity / step)))
    piece = _round_down(quantity / count, step)
    return [*([piece] * (count - 1)), quantity - piece * (count - 1)]


def _round_down(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_DOWN) * step
