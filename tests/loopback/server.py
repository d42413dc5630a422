"""The loopback Binance USD-M stand-in: REST and websocket streams on 127.0.0.1 (random port).

REST: Binance's paths, answered by LoopbackState (reads, listen keys) and Engine (orders);
every request is logged with its Binance request weight and the stand-in's time
(`weight_per_minute`). Before answering, due conditional orders are triggered. Faults:
`inject(Fault)` for the next matching request, `outage(Outage)` for a time window,
`random_faults` per request from a seed, `ban(until_ms)` (HTTP 418 with Retry-After); every
error a fault answered is kept in `faulted` (stand-in ms, method, path), every Retry-After in
`retry_after_ms` ([start, end) in the stand-in's ms).
`algo_answer_omits`: fields left out of every algo order in its REST answers (POST and GET
/fapi/v1/algoOrder, GET /fapi/v1/openAlgoOrders), and `streams.algo_event_omits` out of
ALGO_UPDATE's order: Binance documents them, but a client must not take an answer without an
optional one for a different order.
A second client of the same account (a person on Binance's web site: another front door,
another IP) sends the header `SECOND_CLIENT` (`X-Loopback-Client`, any value): it trades and
reads the same books, and its orders' user-data events go out like any, but it meets none of
the faults, outages or bans, and its requests are not logged or weighed with the API's.
Websockets (`streams`, a StreamHub): mark prices every second of the stand-in's clock and
user-data events; they run only when a clock is given.

Point ccxt at it with `loopback_settings(server)` (exchange.rest_url / ws_url) or
`loopback_api_urls(server.base_url)`. It never verifies signatures and never records or logs
headers, so the API key and secret go nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from quantum_trader.ports import Clock

from .engine import Engine
from .faults import Fault, Outage, RandomFaults
from .force_orders import force_orders
from .state import BinanceError, LoopbackState
from .streams import StreamHub
from .weights import LoggedRequest, request_weight, weight_by_route, weight_per_minute

Handler = Callable[["LoopbackBinance", dict[str, str]], Any]
SECOND_CLIENT = "X-Loopback-Client"


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
    """`async with LoopbackBinance(clock=clock) as server:`; `server.base_url` (http) and
    `server.ws_url` (ws) are its addresses. Without a clock the state's time is a number
    tests set (`state.now_ms`) and no stream pushes anything by itself."""

    def __init__(
        self,
        state: LoopbackState | None = None,
        *,
        clock: Clock | None = None,
        report_actual_order: bool = True,
        port: int = 0,
    ) -> None:
        self.state = state or LoopbackState()
        if clock is not None:
            self.state.clock = clock
        self.clock = self.state.clock
        self.engine = Engine(self.state, report_actual_order)
        self.streams = StreamHub(self.state, self.sync)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.log: list[LoggedRequest] = []
        self.weight = 0
        self.unknown_paths: list[str] = []
        self.outages: list[Outage] = []
        self.random_faults: RandomFaults | None = None
        self.retry_after_ms: list[tuple[int, int]] = []
        self.faulted: list[tuple[int, str, str]] = []
        self.banned_until_ms = 0
        self.algo_answer_omits: frozenset[str] = frozenset()
        self.activity = 0  # REST requests taken and answered (see `busy`)
        self._answering = 0
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._port = port
        self.port = 0  # the port it listens on, once entered
        self.base_url = self.ws_url = ""

    async def __aenter__(self) -> LoopbackBinance:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = port = self._runner.addresses[0][1]
        self.base_url, self.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        if self.clock is not None:
            self._pusher = asyncio.create_task(self.streams.run(self.clock), name="loopback-push")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        await self.streams.disconnect()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- faults and accounting -----------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Apply `fault` to the next request whose path contains `fault.path`."""
        self._faults.append(fault)

    def outage(self, outage: Outage) -> None:
        self.outages.append(outage)

    def ban(self, until_ms: int) -> None:
        """Answer every REST request with HTTP 418 (IP banned) until `until_ms`."""
        self.banned_until_ms = until_ms

    def reset_counts(self) -> None:
        self.requests.clear()
        self.weight = 0

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for m, p, _ in self.requests if p == path and method in (None, m))

    def weight_per_minute(self, start_ms: int, end_ms: int) -> list[int]:
        """Request weight of each whole minute of the stand-in's clock in [start, end)."""
        return weight_per_minute(self.log, start_ms, end_ms)

    def weight_by_route(self, start_ms: int, end_ms: int) -> dict[str, int]:
        return weight_by_route(self.log, start_ms, end_ms)

    def busy(self) -> bool:
        """Whether a REST request is being answered or a websocket message waits to be sent.
        With `activity` and `streams.activity`: nothing changed between two looks if both
        are the same and the stand-in was not busy (`fixtures.settle`)."""
        return self._answering > 0 or self.streams.busy()

    def sync(self) -> None:
        """Trigger the conditional orders the mark price has crossed (before every answer)."""
        self.engine.sync()

    # -- serving -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.streams.handle(request)
        self.activity += 1
        self._answering += 1
        try:
            return await self._answer_rest(request)
        finally:
            self._answering -= 1
            self.activity += 1

    async def _answer_rest(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method in ("POST", "PUT", "DELETE"):
            params.update({k: str(v) for k, v in (await request.post()).items()})
        params.pop("signature", None)
        if request.headers.get(SECOND_CLIENT):
            self.sync()
            return self._answer(request.method, request.path, params, None)
        weight = request_weight(request.method, request.path, params)
        self.requests.append((request.method, request.path, params))
        self.log.append(
            LoggedRequest(self.state.now_ms, request.method, request.path, params, weight)
        )
        self.weight += weight
        refused = self._refusal(request.method, request.path, params)
        if refused is not None:
            return refused
        fault = self._take_fault(request.method, request.path, params)
        if fault is not None and (fault.code is not None or fault.body is not None):
            now = self.state.now_ms
            self.faulted.append((now, request.method, request.path))
            if fault.retry_after_s:
                self.retry_after_ms.append((now, now + round(fault.retry_after_s * 1000)))
            if fault.processed:  # with its fill plan, when it has one
                self.sync()
                self._answer(request.method, request.path, params, fault)
            return _fault_answer(fault)
        self.sync()
        response = self._answer(request.method, request.path, params, fault)
        # As Binance does: the IP weight used so far (here: since the last reset_counts()).
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight)
        if fault is not None and fault.delay_s is not None:
            await asyncio.sleep(fault.delay_s)
        return response

    def _refusal(self, method: str, path: str, params: dict[str, str]) -> web.Response | None:
        now = self.state.now_ms
        if now < self.banned_until_ms:
            msg = (
                f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
            retry_after = max(1, (self.banned_until_ms - now + 999) // 1000)
            return _error(BinanceError(-1003, msg, 418), {"Retry-After": str(retry_after)})
        for outage in self.outages:
            if outage.covers(method, path, now, params):
                return web.Response(status=outage.status, text=outage.body)
        return None

    def _take_fault(self, method: str, path: str, params: dict[str, str]) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(method, path, params):
                return self._faults.pop(index)
        if self.random_faults is not None:
            return self.random_faults.draw(method, path)
        return None

    def _answer(
        self, method: str, path: str, params: dict[str, str], fault: Fault | None
    ) -> web.Response:
        handler = ROUTES.get((method, path))
        if (method, path) == ("POST", "/fapi/v1/order"):
            handler = lambda b, p: b.engine.place_order(p, fault.fill if fault else None)  # noqa: E731
        if handler is None:
            self.unknown_paths.append(f"{method} {path}")
            return _error(BinanceError(-5000, f"Path {path} not emulated", 404))
        try:
            answer = handler(self, params)
        except BinanceError as error:
            return _error(error)
        if path in ALGO_PATHS and self.algo_answer_omits:
            answer = _omitted(answer, self.algo_answer_omits)
        return web.json_response(answer)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/fapi/v1/ping"): lambda b, p: {},
    ("GET", "/fapi/v1/time"): lambda b, p: {"serverTime": b.state.now_ms},
    ("GET", "/fapi/v1/exchangeInfo"): lambda b, p: b.state.exchange_info(),
    ("GET", "/fapi/v1/premiumIndex"): lambda b, p: b.state.premium_index(p),
    ("GET", "/fapi/v1/ticker/24hr"): lambda b, p: b.state.tickers_24h,
    ("GET", "/fapi/v1/klines"): lambda b, p: b.state.klines(p),
    ("GET", "/fapi/v1/fundingRate"): lambda b, p: b.state.funding_rates(p),
    ("GET", "/fapi/v3/account"): lambda b, p: b.state.account(),
    ("GET", "/fapi/v2/positionRisk"): lambda b, p: b.state.position_risk(),
    ("GET", "/fapi/v3/positionRisk"): lambda b, p: b.state.position_risk_v3(),
    ("GET", "/fapi/v1/symbolConfig"): lambda b, p: b.state.symbol_config(p),
    ("GET", "/fapi/v1/positionSide/dual"): lambda b, p: {
        "dualSidePosition": b.state.dual_side_position
    },
    ("GET", "/fapi/v1/multiAssetsMargin"): lambda b, p: {
        "multiAssetsMargin": b.state.multi_assets_margin
    },
    ("GET", "/fapi/v1/leverageBracket"): lambda b, p: b.state.leverage_brackets(p),
    ("POST", "/fapi/v1/leverage"): lambda b, p: b.state.set_leverage(p),
    ("POST", "/fapi/v1/marginType"): lambda b, p: b.state.set_margin_type(p),
    ("GET", "/fapi/v1/order"): lambda b, p: b.state.get_order(p),
    ("POST", "/fapi/v1/algoOrder"): lambda b, p: b.engine.place_algo_order(p),
    ("GET", "/fapi/v1/algoOrder"): lambda b, p: b.state.get_algo_order(p),
    ("DELETE", "/fapi/v1/algoOrder"): lambda b, p: b.engine.cancel_algo_order(p),
    ("GET", "/fapi/v1/openAlgoOrders"): lambda b, p: b.state.open_algo_orders(p),
    ("GET", "/fapi/v1/userTrades"): lambda b, p: b.state.user_trades(p),
    ("GET", "/fapi/v1/income"): lambda b, p: b.state.income_history(p),
    ("GET", "/fapi/v1/forceOrders"): lambda b, p: force_orders(b.state, p),
    ("POST", "/fapi/v1/listenKey"): lambda b, p: b.state.create_listen_key(),
    ("PUT", "/fapi/v1/listenKey"): lambda b, p: b.state.keep_alive_listen_key(),
    ("DELETE", "/fapi/v1/listenKey"): lambda b, p: b.state.close_listen_key(),
}


ALGO_PATHS = ("/fapi/v1/algoOrder", "/fapi/v1/openAlgoOrders")


def _omitted(answer: Any, fields: frozenset[str]) -> Any:
    """A copy of an algo order (or a list of them) without `fields`; a cancel's answer
    ({"code", "msg"}) names none of them."""
    if isinstance(answer, list):
        return [_omitted(row, fields) for row in answer]
    return {k: v for k, v in answer.items() if k not in fields}


def _fault_answer(fault: Fault) -> web.Response:
    headers = {"Retry-After": f"{fault.retry_after_s:g}"} if fault.retry_after_s else {}
    if fault.code is not None:
        return _error(BinanceError(fault.code, fault.msg, fault.status), headers)
    return web.Response(status=fault.status, text=fault.body, headers=headers)


def _error(error: BinanceError, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"code": error.code, "msg": error.msg})
    return web.Response(
        status=error.status, text=body, content_type="application/json", headers=headers
    )
