"""An order's trades (GET /fapi/v1/userTrades) → Fills with their fees in USDT. Pure; no I/O.

Binance charges a trade's commission in USDT, or in BNB when the account pays fees with BNB
("BNB fee discount": `commissionAsset` "BNB", `commission` in BNB). A commission in another
asset is valued at that asset's USDT price in the trade's minute (`price_minutes` says which
prices are needed; the adapter reads them, fee_prices.py): Binance documents no price at which
it values a BNB commission, so the nearest it publishes is used, the close of the minute's
kline of the asset's USDT perpetual (`parse_minute_close`; while that minute still forms, the
latest price). An asset with no such market is given as None: its commission counts 0 and the
caller says so.

The sign of a commission (`charged_commission`): a taker's is a charge whatever its sign —
Binance's own Account Trade List example writes a taker fill's commission "-0.07819010" —, a
maker's negative one a rebate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ZERO, Fill
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.binance_wire import (
    PLAIN_STATUS,
    SETTLE_ASSET,
    Execution,
    as_list,
    decimal_field,
    field,
    int_field,
    ms_field,
    side_field,
)

MINUTE_MS = 60_000
PriceKey = tuple[str, int]  # (commission asset, open time of the trade's minute in ms)
# A USDT price per (asset, minute); None: the asset has no USDT market (its commission is 0).
Prices = Mapping[PriceKey, Decimal | None]


def price_minutes(payload: Any, symbol: str) -> set[PriceKey]:
    """The (asset, minute) of every non-zero commission not charged in USDT."""
    what = f"userTrades {symbol}"
    keys = set()
    for row in as_list(payload, "userTrades"):
        asset = str(field(row, "commissionAsset", what))
        if asset != SETTLE_ASSET and _commission(row, what) != 0:
            keys.add((asset, minute_of(int_field(row, "time", what))))
    return keys


def minute_of(time_ms: int) -> int:
    return time_ms - time_ms % MINUTE_MS


def parse_fills(payload: Any, symbol: str, client_order_id: str, prices: Prices) -> list[Fill]:
    """Executions of one order, each commission in USDT: a commission in another asset times
    its price in `prices` (every key of `price_minutes` must be there)."""
    what = f"userTrades {symbol}"
    return [
        _fill(row, what, symbol, client_order_id, prices) for row in as_list(payload, "userTrades")
    ]


def execution_of_trades(payload: Any, symbol: str) -> Execution:
    """Quantity and average price of an order's trades (their fees are not needed, not read)."""
    unpriced = dict.fromkeys(price_minutes(payload, symbol))
    return Execution.of_fills(parse_fills(payload, symbol, "", unpriced))


def actual_order_execution(payload: Any, symbol: str) -> tuple[bool, Execution]:
    """Whether a triggered algo order's actual order (GET /fapi/v1/order by its actualOrderId)
    has ended, and what it executed: its `executedQty` and `avgPrice`, which Binance's order
    query reports as the order stands, whether or not userTrades lists its trades yet."""
    what = f"order {symbol}"
    raw = str(field(payload, "status", what))
    if raw not in PLAIN_STATUS:
        raise MarketDataError(f"{what}: unknown status {raw!r}")
    quantity = decimal_field(payload, "executedQty", what)
    price = decimal_field(payload, "avgPrice", what) if payload.get("avgPrice") else ZERO
    if quantity > 0 and price <= 0:
        raise MarketDataError(f"{what}: executedQty {quantity} without an avgPrice")
    execution = Execution(quantity, price) if quantity > 0 else Execution(ZERO, None)
    return PLAIN_STATUS[raw].is_final, execution


def other_asset_fees(
    payload: Any, symbol: str, prices: Prices
) -> dict[str, tuple[Decimal, Decimal]]:
    """By asset other than USDT: the trades' commission in it, and in USDT at `prices`."""
    what = f"userTrades {symbol}"
    fees: dict[str, tuple[Decimal, Decimal]] = {}
    for row in as_list(payload, "userTrades"):
        asset = str(field(row, "commissionAsset", what))
        fee = _commission(row, what)
        if asset != SETTLE_ASSET and fee != 0:
            in_asset, in_usdt = fees.get(asset, (ZERO, ZERO))
            usdt = _fee_usdt(row, what, int_field(row, "time", what), prices)
            fees[asset] = (in_asset + fee, in_usdt + usdt)
    return fees


def parse_minute_close(payload: Any, market_id: str, minute_ms: int) -> Decimal:
    """The close of the 1m kline opening at `minute_ms` in a GET /fapi/v1/klines answer
    (`[openTime, open, high, low, close, ...]` rows); no such row, or a close that is not a
    positive finite number, is a MarketDataError."""
    what = f"klines {market_id} 1m"
    for row in as_list(payload, what):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < 5:
            raise MarketDataError(f"{what}: malformed row {row!r}")
        if str(row[0]) == str(minute_ms):
            return decimal_field({"close": row[4]}, "close", what, positive=True)
    raise MarketDataError(f"{what}: no candle opening at {minute_ms} in the answer")


def _fill(row: Any, what: str, symbol: str, client_order_id: str, prices: Prices) -> Fill:
    side, time_ms = side_field(row, "side", what), ms_field(row, "time", what)
    return Fill(
        trade_id=str(field(row, "id", what)),
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        quantity=decimal_field(row, "qty", what, positive=True),
        price=decimal_field(row, "price", what, positive=True),
        fee_usdt=_fee_usdt(row, what, time_ms, prices),
        time=utc_from_ms(time_ms),
        is_maker=row.get("maker") is True,  # as the commission reads it: "false" is no maker
    )


def charged_commission(commission: Decimal, is_maker: bool) -> Decimal:
    """What a fill cost, from the commission Binance reports for it (a userTrades row's
    `commission` with its `maker`; ORDER_TRADE_UPDATE's "n" with its "m"): positive a
    charge, negative a rebate.

    A taker pays on every Binance fee schedule, so its commission is a charge whatever its
    sign (Binance's Account Trade List example shows a taker's "-0.07819010"; booked as
    written, it was a rebate). A maker's negative commission is kept as a rebate: Binance's
    USD-M maker rates go below zero for market-maker programme accounts. Were a maker's
    charge ever written negative as in that example, its fee would read as a rebate: only
    a person's resting orders fill as maker, never ours (market orders)."""
    return commission if is_maker else abs(commission)


def _commission(row: Any, what: str) -> Decimal:
    """A userTrades row's commission as charged (`charged_commission`); a row that does not
    say it was the maker's is the taker's, as all of ours are (market orders)."""
    return charged_commission(decimal_field(row, "commission", what), row.get("maker") is True)


def _fee_usdt(row: Any, what: str, time_ms: int, prices: Prices) -> Decimal:
    fee = _commission(row, what)
    asset = str(field(row, "commissionAsset", what))
    if asset == SETTLE_ASSET or fee == 0:
        return fee
    key = (asset, minute_of(time_ms))
    if key not in prices:
        raise MarketDataError(f"{what}: no USDT price for a commission in {asset}")
    price = prices[key]
    return ZERO if price is None else fee * price
