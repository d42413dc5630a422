"""A loopback stand-in for Binance USD-M REST: a real aiohttp server on 127.0.0.1."""

from .server import Fault, LoopbackBinance, loopback_api_urls
from .state import DEFAULT_MARKETS, BinanceError, LoopbackMarket, LoopbackState

__all__ = [
    "DEFAULT_MARKETS",
    "BinanceError",
    "Fault",
    "LoopbackBinance",
    "LoopbackMarket",
    "LoopbackState",
    "loopback_api_urls",
]
