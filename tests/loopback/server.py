"""The loopback HTTP server: Binance USD-M REST paths on 127.0.0.1 (random port).

It counts every request with its Binance request weight (documented IP weights, for the
request-weight checks of SPEC §11) and can be told to fail the next matching request with a
Binance error code or HTTP status, to answer too late (after processing it: an order placed by
a timed-out request exists), or to answer with a malformed body. It never verifies signatures
and never records or logs headers, so the API key and secret go nowhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .state import BinanceError, LoopbackState

Handler = Callable[[LoopbackState, dict[str, str]], Any]

ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/fapi/v1/ping"): lambda s, p: {},
    ("GET", "/fapi/v1/time"): lambda s, p: {"serverTime": s.now_ms},
    ("GET", "/fapi/v1/exchangeInfo"): lambda s, p: s.exchange_info(),
    ("GET", "/fapi/v1/premiumIndex"): lambda s, p: s.premium_index(p),
    ("GET", "/fapi/v1/ticker/24hr"): lambda s, p: s.tickers_24h,
    ("GET", "/fapi/v1/klines"): lambda s, p: s.klines(p),
    ("GET", "/fapi/v1/fundingRate"): lambda s, p: s.funding_rates(p),
    ("GET", "/fapi/v3/account"): lambda s, p: s.account(),
    ("GET", "/fapi/v2/positionRisk"): lambda s, p: s.position_risk(),
    ("GET", "/fapi/v1/positionSide/dual"): lambda s, p: {"dualSidePosition": s.dual_side_position},
    ("GET", "/fapi/v1/multiAssetsMargin"): lambda s, p: {
        "multiAssetsMargin": s.multi_assets_margin
    },
    ("POST", "/fapi/v1/leverage"): lambda s, p: s.set_leverage(p),
    ("POST", "/fapi/v1/marginType"): lambda s, p: s.set_margin_type(p),
    ("POST", "/fapi/v1/order"): lambda s, p: s.place_order(p),
    ("GET", "/fapi/v1/order"): lambda s, p: s.get_order(p),
    ("POST", "/fapi/v1/algoOrder"): lambda s, p: s.place_algo_order(p),
    ("GET", "/fapi/v1/algoOrder"): lambda s, p: s.get_algo_order(p),
    ("DELETE", "/fapi/v1/algoOrder"): lambda s, p: s.cancel_algo_order(p),
    ("GET", "/fapi/v1/openAlgoOrders"): lambda s, p: s.open_algo_orders(p),
    ("GET", "/fapi/v1/userTrades"): lambda s, p: s.user_trades(p),
    ("GET", "/fapi/v1/income"): lambda s, p: s.income_history(p),
}

# Binance's documented IP request weights (USD-M, 2025-12).
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v1/multiAssetsMargin"): 30,
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/ticker/24hr"): 40,
    ("GET", "/fapi/v1/income"): 30,
    ("POST", "/fapi/v1/order"): 0,
}


def request_weight(method: str, path: str, params: dict[str, str]) -> int:
    """The IP weight Binance charges for one request."""
    if path == "/fapi/v1/premiumIndex":
        return 1 if "symbol" in params else 10
    if path == "/fapi/v1/openAlgoOrders":
        return 1 if "symbol" in params else 40
    if path == "/fapi/v1/klines":
        limit = int(params.get("limit", 500))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    return WEIGHTS.get((method, path), 1)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of (or after) answering the next request whose path contains `path`.

    `code` set: answer {"code": code, "msg": msg} with HTTP `status`. `delay_s` set: process the
    request, then wait before answering. `body` set: answer HTTP `status` with this raw text.
    """

    path: str = ""
    status: int = 400
    code: int | None = None
    msg: str = "loopback fault"
    delay_s: float | None = None
    body: str | None = None


def loopback_api_urls(base_url: str) -> dict[str, str]:
    """ccxt API names → the loopback server, for CcxtExchange.create(api_urls=...)."""
    return {
        "fapiPublic": f"{base_url}/fapi/v1",
        "fapiPublicV2": f"{base_url}/fapi/v2",
        "fapiPublicV3": f"{base_url}/fapi/v3",
        "fapiPrivate": f"{base_url}/fapi/v1",
        "fapiPrivateV2": f"{base_url}/fapi/v2",
        "fapiPrivateV3": f"{base_url}/fapi/v3",
        "public": f"{base_url}/api/v3",
        "private": f"{base_url}/api/v3",
    }


class LoopbackBinance:
    """Run with `async with LoopbackBinance() as server:`; `server.base_url` is the address."""

    def __init__(self, state: LoopbackState | None = None) -> None:
        self.state = state or LoopbackState()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.weight = 0
        self.unknown_paths: list[str] = []
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> LoopbackBinance:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def inject(self, fault: Fault) -> None:
        """Apply `fault` to the next request whose path contains `fault.path`."""
        self._faults.append(fault)

    def reset_counts(self) -> None:
        self.requests.clear()
        self.weight = 0

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for m, p, _ in self.requests if p == path and method in (None, m))

    def _take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.path in path:
                return self._faults.pop(index)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        params.pop("signature", None)
        self.requests.append((request.method, request.path, params))
        self.weight += request_weight(request.method, request.path, params)
        fault = self._take_fault(request.path)
        if fault is not None and fault.code is not None:
            return _error(BinanceError(fault.code, fault.msg, fault.status))
        if fault is not None and fault.body is not None:
            return web.Response(status=fault.status, text=fault.body)
        response = self._answer(request.method, request.path, params)
        if fault is not None and fault.delay_s is not None:
            await asyncio.sleep(fault.delay_s)
        return response

    def _answer(self, method: str, path: str, params: dict[str, str]) -> web.Response:
        handler = ROUTES.get((method, path))
        if handler is None:
            self.unknown_paths.append(f"{method} {path}")
            return _error(BinanceError(-5000, f"Path {path} not emulated", 404))
        try:
            return web.json_response(handler(self.state, params))
        except BinanceError as error:
            return _error(error)


def _error(error: BinanceError) -> web.Response:
    body = json.dumps({"code": error.code, "msg": error.msg})
    return web.Response(status=error.status, text=body, content_type="application/json")
