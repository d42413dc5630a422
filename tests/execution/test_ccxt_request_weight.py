"""Request count and Binance weight of a steady-state executor cycle and a monitor tick (SPEC §11).

8 symbols, one open position with a protective stop. The executor cycle refreshes the market
(ExchangeFeed over the adapter), batched mark prices, balance and positions; the monitor tick
reads the position's mark price (one symbol: weight 1) and its open conditional orders.
"""

from __future__ import annotations

from decimal import Decimal

from loopback import LoopbackBinance

from quantum_trader.clock import utc_from_ms
from quantum_trader.config import DEFAULT_SYMBOLS
from quantum_trader.domain import OrderKind, OrderRequest, OrderSide
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.market.exchange_feed import ExchangeFeed

BTC = "BTC/USDT:USDT"


async def executor_cycle(exchange: CcxtExchange, feed: ExchangeFeed, now_ms: int) -> None:
    await feed.snapshot(utc_from_ms(now_ms))
    await exchange.fetch_mark_prices(DEFAULT_SYMBOLS)
    await exchange.fetch_balance()
    await exchange.fetch_positions()


async def monitor_tick(exchange: CcxtExchange) -> None:
    await exchange.fetch_mark_prices([BTC])
    await exchange.fetch_open_conditional_orders(BTC)


async def test_steady_state_cycle_and_tick_request_budget(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    feed = ExchangeFeed(exchange, DEFAULT_SYMBOLS, "5m", history_bars=300)
    start_ms = loopback.state.now_ms + 10_000  # 10 s into a 5m bar
    await executor_cycle(exchange, feed, start_ms)  # warm-up: history and funding
    await exchange.set_leverage(BTC, 5)  # as the trader does before an entry
    await exchange.place_order(
        OrderRequest("qteBTC", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal("0.01"))
    )
    await exchange.place_order(
        OrderRequest("qtsBTC", BTC, OrderSide.SELL, OrderKind.STOP_MARKET, Decimal("0.01"),
                     trigger_price=Decimal(95000), reduce_only=True)
    )  # fmt: skip

    loopback.reset_counts()
    await executor_cycle(exchange, feed, start_ms + 30_000)  # same bar: no candles to fetch
    await monitor_tick(exchange)
    quiet = (len(loopback.requests), loopback.weight)

    loopback.state.now_ms += 5 * 60_000
    loopback.reset_counts()
    await executor_cycle(exchange, feed, start_ms + 5 * 60_000)  # one new bar per symbol
    await monitor_tick(exchange)
    new_bar = (len(loopback.requests), loopback.weight)

    # mark prices of 8 symbols 10 + account 5 + positionRisk 5; tick: BTC's mark price 1 +
    # openAlgoOrders 1
    assert quiet == (5, 22)
    # plus 8 klines requests of weight 1 (limit 1)
    assert new_bar == (13, 30)
    assert loopback.unknown_paths == []
