"""A loopback stand-in for Binance USD-M: REST and websocket streams on 127.0.0.1."""

from .engine import Engine, FillPlan
from .faults import (
    Fault,
    Outage,
    RandomFaults,
    RandomStreamFaults,
    StreamFaults,
    random_outages,
)
from .markets import DEFAULT_MARKETS, LoopbackMarket, MarkPath, generated_markets
from .server import SECOND_CLIENT, LoopbackBinance, loopback_api_urls
from .state import BinanceError, LoopbackState
from .weights import WEIGHT_LIMIT_PER_MINUTE, LoggedRequest, request_weight

__all__ = [
    "DEFAULT_MARKETS",
    "SECOND_CLIENT",
    "WEIGHT_LIMIT_PER_MINUTE",
    "BinanceError",
    "Engine",
    "Fault",
    "FillPlan",
    "LoggedRequest",
    "LoopbackBinance",
    "LoopbackMarket",
    "LoopbackState",
    "MarkPath",
    "Outage",
    "RandomFaults",
    "RandomStreamFaults",
    "StreamFaults",
    "generated_markets",
    "loopback_api_urls",
    "random_outages",
    "request_weight",
]
