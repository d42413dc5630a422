"""Binance's documented IP request weights (USD-M) and the stand-in's weight accounting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WEIGHT_LIMIT_PER_MINUTE = 2400

WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v1/symbolConfig"): 5,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v1/multiAssetsMargin"): 30,
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/income"): 30,
    ("GET", "/fapi/v1/ticker/24hr"): 40,
    ("GET", "/fapi/v1/allAlgoOrders"): 5,
    ("POST", "/fapi/v1/order"): 0,  # counts against the order limits, not the IP weight
    ("POST", "/fapi/v1/algoOrder"): 0,
}


def request_weight(method: str, path: str, params: dict[str, str]) -> int:
    """The IP weight Binance charges for one request."""
    if path == "/fapi/v1/premiumIndex":
        return 1 if "symbol" in params else 10
    if path == "/fapi/v1/openAlgoOrders":
        return 1 if "symbol" in params else 40
    if path == "/fapi/v1/forceOrders":
        return 20 if "symbol" in params else 50
    if path == "/fapi/v1/klines":
        limit = int(params.get("limit", 500))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    return WEIGHTS.get((method, path), 1)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the stand-in saw it (parameters without the signature)."""

    time_ms: int
    method: str
    path: str
    params: dict[str, str]
    weight: int


def weight_per_minute(log: Sequence[LoggedRequest], start_ms: int, end_ms: int) -> list[int]:
    """The weight of each whole minute in [start_ms, end_ms) of the stand-in's clock."""
    minutes = (end_ms - start_ms) // 60_000
    totals = [0] * minutes
    for entry in log:
        index = (entry.time_ms - start_ms) // 60_000
        if 0 <= index < minutes:
            totals[index] += entry.weight
    return totals


def weight_by_route(log: Sequence[LoggedRequest], start_ms: int, end_ms: int) -> dict[str, int]:
    """Total weight by "METHOD path" in [start_ms, end_ms), heaviest first."""
    totals: dict[str, int] = {}
    for entry in log:
        if start_ms <= entry.time_ms < end_ms:
            route = f"{entry.method} {entry.path}"
            totals[route] = totals.get(route, 0) + entry.weight
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
