"""Orders on Binance USD-M, the order half of the Exchange port (`CcxtExchange`'s). I/O.

Routes: market orders POST /fapi/v1/order (newOrderRespType RESULT, so the answer carries
status and executed quantity); STOP_MARKET / TAKE_PROFIT_MARKET go to the Algo Order API
(POST/GET/DELETE /fapi/v1/algoOrder, GET /fapi/v1/openAlgoOrders, algoType CONDITIONAL, our id
as clientAlgoId). An order is looked up by our client id as a plain order, then as an algo
order; one of our stops or take-profits (its id says so: keeper/ids.py) as an algo order
first, since Binance does not document which client id a triggered algo order's market order
carries — should it carry the algo order's, the plain lookup would find that market order and
the stop's fill would read as a plain market order's. Orders and cancels are sent once, and a
cancel is done only when Binance says "success".

A triggered stop (FINISHED) is booked from its actual order (GET /fapi/v1/order by
actualOrderId: its status, executedQty and avgPrice, read whether or not userTrades lists its
trades yet) or, when Binance reports no actual order id, from the trades on its side in the
trigger's time window (GET /fapi/v1/userTrades); while that is not known yet the lookup fails
(RetryLater), never reading as EXPIRED with nothing executed. Fills come from userTrades, a
commission Binance charged in BNB valued in USDT at BNBUSDT's 1m close of its minute
(fee_prices.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import (
    ZERO,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderRequest,
    OrderSide,
    ReasonCode,
)
from quantum_trader.errors import MarketDataError, OrderRejected, OrderStateUnknown, RetryLater
from quantum_trader.execution import binance_fills as trades
from quantum_trader.execution import binance_wire as wire
from quantum_trader.execution.adapter_part import AdapterPart
from quantum_trader.execution.binance_account_trades import TRADES_PAGE, account_trades
from quantum_trader.execution.binance_client import BinanceRest
from quantum_trader.execution.binance_errors import Operation
from quantum_trader.execution.binance_force_orders import force_orders
from quantum_trader.execution.binance_requests import order_params
from quantum_trader.execution.fee_prices import CommissionPrices, fills_in_usdt
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.log import get_logger
from quantum_trader.record import replace

log = get_logger("ccxt_exchange")
TRIGGER_SLACK_MS = 5_000
# A FINISHED stop reported without its actual order id whose window lists no trade this long
# after it finished executed nothing (before, its trades may not be listed yet).
TRADES_LISTED_WITHIN_MS = 60_000
# Binance's order query no longer finds an order that ended CANCELED or EXPIRED with no
# filled trade 3 days after it was created (GET /fapi/v1/order, "These orders will not be found").
FORGOTTEN_AFTER_MS = 3 * 86_400_000
NOT_FOUND = frozenset({-2013, -2011})  # "Order does not exist", "Unknown order sent"


class OrderCalls(AdapterPart):
    """The order calls of `CcxtExchange`, which sets these attributes and gives `_read` and
    `_market_id` (its markets and retried reads: adapter_part.py)."""

    _rest: BinanceRest
    _rules: dict[str, MarketRules]
    _id_by_symbol: dict[str, str]
    _symbol_by_id: dict[str, str]
    _fee_prices: CommissionPrices

    async def place_order(self, request: OrderRequest) -> Order:
        """Send once. OrderRejected if refused; OrderStateUnknown if the answer is lost or
        the client id exists already; RetryLater if Binance executed nothing (rate limit)."""
        rules = await self._rules_for(request.symbol)
        quantity = rules.round_quantity_down(request.quantity)
        if quantity <= 0 and not request.close_position:
            raise OrderRejected(ReasonCode.BELOW_MIN_QUANTITY, f"{request.quantity} rounds to 0")
        params = order_params(request, self._id_by_symbol[request.symbol], quantity, rules)
        endpoint = "fapiPrivatePostAlgoOrder" if request.kind.is_conditional else (
            "fapiPrivatePostOrder"
        )  # fmt: skip
        answer = await self._rest.call(
            endpoint, params, Operation.ORDER, client_order_id=request.client_order_id
        )
        try:
            if request.kind.is_conditional:
                order = wire.parse_algo_order(
                    answer, request.symbol, sent_close_all=request.close_position
                )
            else:
                order = wire.parse_order(answer, request.symbol)
        except (MarketDataError, KeyError, TypeError, ValueError) as error:
            raise OrderStateUnknown(
                request.client_order_id, f"unreadable answer to an order request: {error}"
            ) from error
        if order.reduce_only is None:  # the answer does not say: as sent
            return replace(order, reduce_only=request.reduce_only)
        return order

    async def _rules_for(self, symbol: str) -> MarketRules:
        await self._market_id(symbol, Operation.ORDER)
        return self._rules[symbol]

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look up an order by our client id: a plain order, then a conditional (algo) order;
        one of our stops or take-profits the other way round (module doc). Weight: GET order
        and GET algoOrder 1 each, a FINISHED algo order's actual order 1 more (so a stop's
        lookup costs 1 less than plain first: the plain miss is not asked)."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        if not _conditional_of_ours(client_order_id):
            plain = await self._plain_order(market_id, {"origClientOrderId": client_order_id})
            if plain is not None:
                return wire.parse_order(plain, symbol)
        algo = await self._algo_order(client_order_id)
        if algo is not None:
            execution = None
            if algo.get("algoStatus") == wire.ALGO_FINISHED:
                execution = await self._triggered_execution(symbol, client_order_id, algo)
            return wire.parse_algo_order(algo, symbol, execution)
        if not _conditional_of_ours(client_order_id):
            return None
        # Not an algo order: one sent before Binance moved conditional orders to its Algo
        # Order API, on the plain order endpoint.
        plain = await self._plain_order(market_id, {"origClientOrderId": client_order_id})
        return None if plain is None else wire.parse_order(plain, symbol)

    async def _plain_order(self, market_id: str, key: Mapping[str, str]) -> Any:
        params = {"symbol": market_id, **key}
        return await self._read(
            Operation.ACCOUNT, "fapiPrivateGetOrder", params, NOT_FOUND, lookup=True
        )

    async def _algo_order(self, client_order_id: str) -> Any:
        params = {"clientAlgoId": client_order_id}
        return await self._read(
            Operation.ACCOUNT, "fapiPrivateGetAlgoOrder", params, NOT_FOUND, lookup=True
        )

    async def _trades(self, params: Mapping[str, Any]) -> Any:
        """GET /fapi/v1/userTrades, as many as Binance lists at once (its default is 500)."""
        paged = {**params, "limit": TRADES_PAGE}
        return await self._read(Operation.ACCOUNT, "fapiPrivateGetUserTrades", paged, lookup=True)

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        """Open STOP_MARKET / TAKE_PROFIT_MARKET algo orders, of one symbol (weight 1) or all
        (weight 40). Orders of other types and unknown symbols are left out."""
        params = {}
        if symbol is not None:
            params["symbol"] = await self._market_id(symbol, Operation.ACCOUNT)
        elif not self._rules:
            await self.load_markets()
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateGetOpenAlgoOrders", params)
        orders = []
        for row in wire.as_list(payload, "openAlgoOrders"):
            known = self._symbol_by_id.get(str(wire.field(row, "symbol", "openAlgoOrders")))
            if known is not None and row.get("orderType") in wire.CONDITIONAL_KINDS:
                orders.append(wire.parse_algo_order(row, known))
        return orders

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel once. Returns when Binance answered "success". Raises OrderRejected when the
        order is no longer open (final — it may have filled just before —, or unknown to
        Binance): it was not cancelled, and the caller learns how it ended from a lookup;
        OrderStateUnknown otherwise (a stop that is triggering, an answer not a success)."""
        await self._market_id(symbol, Operation.CANCEL)
        answer = await self._rest.call(
            "fapiPrivateDeleteAlgoOrder",
            {"clientAlgoId": client_order_id},
            Operation.CANCEL,
            client_order_id=client_order_id,
            absent=NOT_FOUND,
        )
        if answer is not None and wire.is_cancel_success(answer):
            return
        if answer is not None:
            raise OrderStateUnknown(client_order_id, f"cancel not confirmed: {answer!r}")
        order = await self.fetch_order(symbol, client_order_id)
        if order is not None and not order.status.is_final:
            raise OrderStateUnknown(client_order_id, f"cancel refused while {order.status}")
        ended = order.status if order is not None else "unknown to Binance"
        raise OrderRejected(ReasonCode.ORDER_REJECTED, f"{client_order_id} is already {ended}")

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        """Executions of our order (for a triggered stop: of the market order it started),
        looked up in `fetch_order`'s order; userTrades weighs 5."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        conditional = _conditional_of_ours(client_order_id)
        if not conditional:
            fills = await self._plain_fills(symbol, market_id, client_order_id)
            if fills is not None:
                return fills
        algo = await self._algo_order(client_order_id)
        if algo is None and conditional:  # sent before the Algo Order API: see fetch_order
            return await self._plain_fills(symbol, market_id, client_order_id) or []
        if algo is None or algo.get("algoStatus") not in ("TRIGGERED", wire.ALGO_FINISHED):
            return []
        return await self._fills_of(
            await self._triggered_trades(symbol, algo), symbol, client_order_id
        )

    async def _plain_fills(
        self, symbol: str, market_id: str, client_order_id: str
    ) -> list[Fill] | None:
        """The fills of the plain order of `client_order_id`; None if Binance knows none."""
        plain = await self._plain_order(market_id, {"origClientOrderId": client_order_id})
        if plain is None:
            return None
        params = {"symbol": market_id, "orderId": plain["orderId"]}
        fills = await self._fills_of(await self._trades(params), symbol, client_order_id)
        _say_if_short(fills, plain, client_order_id)
        return fills

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        """GET /fapi/v1/userTrades in the window (weight 5 a page): each order's trades under
        `order-<its Binance order id>`. Rows of another symbol are left out, said once."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
        rows = await account_trades(self._trades, symbol, market_id, start_ms, end_ms)
        what = f"userTrades {symbol}"
        own = [r for r in rows if str(wire.field(r, "symbol", what)) == market_id]
        if len(own) < len(rows):
            log.warning("account_trades_other_symbol", symbol=symbol, rows=len(rows) - len(own))
        by_order = wire.trades_by_order(own, what)
        fills = [
            f
            for oid, of in by_order.items()
            for f in await self._fills_of(of, symbol, f"order-{oid}")
        ]
        return sorted(fills, key=lambda fill: fill.time)

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        """GET /fapi/v1/forceOrders in the window, LIQUIDATION then ADL (weight 20 each; a
        failed request is not retried), under the ids `fetch_account_fills` gives their
        trades (`order-<Binance order id>`)."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
        found = await force_orders(self._force_orders, symbol, market_id, start_ms, end_ms)
        return {f"order-{oid}": reason for oid, reason in found.items()}

    async def _force_orders(self, params: Mapping[str, Any]) -> Any:
        """Asked once, never retried: it only names a close booked meanwhile as MANUAL, so a
        failure must not hold the keeper's tick back (keeper/forced.py)."""
        return await self._rest.call("fapiPrivateGetForceOrders", params, Operation.ACCOUNT)

    async def _fills_of(self, payload: Any, symbol: str, client_order_id: str) -> list[Fill]:
        """The order's fills, a commission in BNB valued in USDT (fee_prices.py)."""
        return await fills_in_usdt(
            payload, symbol, client_order_id, self._fee_prices, self._symbol_by_id
        )

    async def _triggered_execution(
        self, symbol: str, client_order_id: str, algo: Any
    ) -> wire.Execution:
        """What a FINISHED algo order's market order executed: that order's own executedQty
        and avgPrice (GET /fapi/v1/order by actualOrderId, weight 1), which do not wait for
        userTrades to list its trades; without an actual order id, its trades on the stop's
        side in the trigger's window. RetryLater while that is not known yet: the order still
        working, or not found though Binance keeps it (the last 3 days), or no trade listed in
        the window yet (`TRADES_LISTED_WITHIN_MS` after the stop finished) — never nothing
        executed for want of a read."""
        actual = str(algo.get("actualOrderId") or "")
        finished = wire.int_field(algo, "updateTime", "algoOrder")
        age_ms = ms_from_utc(self._rest.now()) - finished
        if not actual:
            rows = await self._triggered_trades(symbol, algo)
            if not wire.as_list(rows, "userTrades") and age_ms <= TRADES_LISTED_WITHIN_MS:
                raise RetryLater(f"{client_order_id} finished: no trade listed yet")
            return trades.execution_of_trades(rows, symbol)
        params = {"orderId": actual}
        payload = await self._plain_order(self._id_by_symbol[symbol], params)
        if payload is None and age_ms > FORGOTTEN_AFTER_MS:
            return wire.Execution(ZERO, None)  # forgotten: it ended with no filled trade
        if payload is None:
            raise RetryLater(f"{client_order_id} finished: its order {actual} not found yet")
        final, execution = trades.actual_order_execution(payload, symbol)
        if not final:
            status = wire.field(payload, "status", "order")
            raise RetryLater(f"{client_order_id} finished: its order {actual} still {status}")
        return execution

    async def _triggered_trades(self, symbol: str, algo: Any) -> Any:
        """Trades of a triggered algo order's market order: by its actual order id, or by
        side in the trigger's time window when Binance did not report the id."""
        market_id = self._id_by_symbol[symbol]
        actual = str(algo.get("actualOrderId") or "")
        if actual:
            return await self._trades({"symbol": market_id, "orderId": actual})
        start_ms, end_ms = wire.trigger_window_ms(algo, TRIGGER_SLACK_MS)
        params = {"symbol": market_id, "startTime": start_ms, "endTime": end_ms}
        payload = await self._trades(params)
        side = OrderSide(wire.field(algo, "side", "algoOrder"))
        return wire.pick_triggered_trades(payload, side, start_ms + TRIGGER_SLACK_MS)


def _conditional_of_ours(client_order_id: str) -> bool:
    """Whether the id names one of our stops or take-profits (sent as algo orders)."""
    return purpose_of(client_order_id) in (Purpose.STOP, Purpose.TARGET)


def _say_if_short(fills: Sequence[Fill], order: Any, client_order_id: str) -> None:
    """One warning when Binance listed fewer trades than the order executed (more than
    TRADES_PAGE trades, or older than its 7-day window): it is booked from the order's own
    executed quantity and average price (keeper/booking.py `execution_of`)."""
    if not fills or not isinstance(order, dict) or "executedQty" not in order:
        return  # only a warning: the order's own parse says what is missing
    executed = wire.decimal_field(order, "executedQty", "order")
    read = sum((f.quantity for f in fills), Decimal(0))
    if read < executed:
        log.warning(
            "fills_incomplete",
            client_order_id=client_order_id,
            trades=len(fills),
            executed=str(executed),
            in_trades=str(read),
            detail="booked from the order's executed quantity and average price; "
            "its fee is the listed trades' scaled up to that quantity",
        )
