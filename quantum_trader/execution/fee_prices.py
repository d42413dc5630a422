"""An order's fills with every commission in USDT: a commission Binance charged in BNB (the
account pays fees with BNB) valued at BNB's USDT price in the trade's minute.

The price is read from Binance through the adapter's own client: GET /fapi/v1/klines, symbol
`<ASSET>USDT` (the USD-M perpetual), interval 1m, startTime the trade's minute, limit 1 —
weight 1 ("[1,100): 1") — and its close taken (binance_fills.py says why that price). Prices
are kept per (asset, minute), so an order of many trades in one minute costs one request and
a fee read again later costs none. A price that cannot be read (the request failing, no such
candle, a close that is not a positive number) fails the read of the order's fills
(MarketDataError / RetryLater): the keeper books the order and reads its fee later
(keeper/fees.py), never a fee of 0. An asset with no USDT perpetual on Binance has no price to
read there: its commission counts 0, with one `fee_not_in_usdt` warning an order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from decimal import Decimal
from typing import Any

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Fill
from quantum_trader.execution import binance_fills as trades
from quantum_trader.execution.binance_wire import SETTLE_ASSET
from quantum_trader.log import get_logger

log = get_logger("ccxt_exchange")
KLINES_ENDPOINT = "fapiPublicGetKlines"
CACHE_SIZE = 1_024  # (asset, minute) prices kept: a day of orders in distinct minutes and more
ReadKlines = Callable[[Mapping[str, Any]], Awaitable[Any]]


class CommissionPrices:
    """USDT prices of commission assets by minute, read with `read` (a GET /fapi/v1/klines
    call with the adapter's retries) and kept for the `cache_size` latest (asset, minute)."""

    def __init__(self, read: ReadKlines, cache_size: int = CACHE_SIZE) -> None:
        self._read = read
        self._cache_size = cache_size
        self._cache: OrderedDict[trades.PriceKey, Decimal] = OrderedDict()

    async def prices(
        self, keys: Iterable[trades.PriceKey], listed: Collection[str]
    ) -> dict[trades.PriceKey, Decimal | None]:
        """The price of each (asset, minute); None for an asset whose `<ASSET>USDT` is not
        among the `listed` market ids."""
        found: dict[trades.PriceKey, Decimal | None] = {}
        for key in sorted(keys):
            market_id = f"{key[0]}{SETTLE_ASSET}"
            found[key] = await self._price(market_id, key) if market_id in listed else None
        return found

    async def _price(self, market_id: str, key: trades.PriceKey) -> Decimal:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        minute_ms = key[1]
        params = {"symbol": market_id, "interval": "1m", "startTime": minute_ms, "limit": 1}
        price = trades.parse_minute_close(await self._read(params), market_id, minute_ms)
        self._cache[key] = price
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return price


async def fills_in_usdt(
    payload: Any,
    symbol: str,
    client_order_id: str,
    prices: CommissionPrices,
    listed: Collection[str],
) -> list[Fill]:
    """The fills of one order's userTrades `payload`, each fee in USDT, with one line an
    asset charged otherwise: `fee_converted` (info) or `fee_not_in_usdt` (warning)."""
    keys = trades.price_minutes(payload, symbol)
    valued = await prices.prices(keys, listed) if keys else {}
    fills = trades.parse_fills(payload, symbol, client_order_id, valued)
    for asset, (fee, fee_usdt) in sorted(trades.other_asset_fees(payload, symbol, valued).items()):
        used = {k[1]: p for k, p in valued.items() if k[0] == asset and p is not None}
        if not used:
            log.warning(
                "fee_not_in_usdt",
                client_order_id=client_order_id,
                fees={asset: str(fee)},
                detail=f"Binance lists no {asset}{SETTLE_ASSET} perpetual to value it: left "
                "out of the order's fee (booked in USDT), its PnL that much better than paid",
            )
            continue
        log.info(
            "fee_converted",
            client_order_id=client_order_id,
            asset=asset,
            commission=str(fee),
            prices={utc_from_ms(m).isoformat(): str(p) for m, p in sorted(used.items())},
            fee_usdt=str(fee_usdt),
        )
    return fills
