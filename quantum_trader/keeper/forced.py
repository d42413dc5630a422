"""A close outside the program that the exchange made itself: named LIQUIDATION or ADL, not
MANUAL. The naming is pure (`forced_reason`); `read_force_orders` is the keeper's one read for
it (`Exchange.fetch_force_orders`: Binance's GET /fapi/v1/forceOrders, weight 20 a kind).

It is read only when a plan books such a close from the account's own trades
(keeper/external.py, `Plan.reducing_trades`), on those trades' symbol and around their times,
and it only names the close: price, fee and quantity are the trades'. A read that fails or an
answer that cannot be read — or refused for the API key: the close must not wait for an
operator — leaves the close booked MANUAL, as before, with one warning line
(`force_orders_unread`): the booking is never held back for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from quantum_trader.domain import ExitReason, Fill
from quantum_trader.errors import QuantumTraderError
from quantum_trader.keeper.external import ACCOUNT_TRADES_SLACK
from quantum_trader.keeper.plan import Observation
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange
from quantum_trader.record import replace

log = get_logger("keeper")


def forced_reason(
    trade_ids: Collection[str], fills: Sequence[Fill], forced: Mapping[str, ExitReason]
) -> ExitReason:
    """Why the trades `trade_ids` (among `fills`) closed a position: LIQUIDATION when the order
    of any of them is one of the exchange's liquidations in `forced` (order id → reason), else
    ADL when any is an auto-deleveraging, else MANUAL (a person's)."""
    orders = {f.client_order_id for f in fills if f.trade_id in trade_ids}
    kinds = {forced[order] for order in orders if order in forced}
    for reason in (ExitReason.LIQUIDATION, ExitReason.ADL):
        if reason in kinds:
            return reason
    return ExitReason.MANUAL


async def read_force_orders(
    exchange: Exchange, seen: Observation, booked: Mapping[str, frozenset[str]]
) -> Observation | None:
    """`seen` with the exchange's force orders on each symbol whose close a plan booked from
    the account's trades `booked` (by symbol, their trade ids), asked from the first of those
    trades to the last (with the clocks' slack); None when none of them was the exchange's:
    the plan stands."""
    named: dict[str, Mapping[str, ExitReason]] = {}
    for symbol, trade_ids in sorted(booked.items()):
        fills = seen.account_fills.get(symbol, ())
        times = [f.time for f in fills if f.trade_id in trade_ids]
        if not times:
            continue
        start, end = min(times) - ACCOUNT_TRADES_SLACK, max(times) + ACCOUNT_TRADES_SLACK
        try:
            forced = await exchange.fetch_force_orders(symbol, start, end)
        except QuantumTraderError as error:  # whatever it is, the close stays booked MANUAL
            log.warning("force_orders_unread", symbol=symbol, error=str(error), booked="MANUAL")
            continue
        if forced_reason(trade_ids, fills, forced) is not ExitReason.MANUAL:
            named[symbol] = forced
    if not named:
        return None
    return replace(seen, force_orders={**seen.force_orders, **named})
