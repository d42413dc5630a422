"""The stand-in itself: its mark-price path, its matching engine's events and triggers, the
stream addresses and messages Binance documents, its fault switches and weight accounting."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from quantum_trader.clock import ManualClock, utc_from_ms

from . import (
    DEFAULT_MARKETS,
    SECOND_CLIENT,
    BinanceError,
    Engine,
    Fault,
    LoopbackBinance,
    LoopbackState,
    MarkPath,
    Outage,
    RandomFaults,
    generated_markets,
    random_outages,
    request_weight,
)
from .force_orders import force_orders
from .state import LISTEN_KEY_VALIDITY_MS, START_MS

BTC_MARKET = DEFAULT_MARKETS[0]


def test_the_mark_path_is_a_function_of_seed_symbol_and_second() -> None:
    path, other = MarkPath(seed=1), MarkPath(seed=2)
    times = [START_MS + 1000 * s for s in range(0, 600, 7)]
    prices = [path.price(BTC_MARKET, t) for t in times]
    assert prices == [MarkPath(seed=1).price(BTC_MARKET, t) for t in times]
    assert prices != [other.price(BTC_MARKET, t) for t in times]
    assert path.price(BTC_MARKET, START_MS + 10) == path.price(BTC_MARKET, START_MS + 990)
    assert all(p % Decimal(BTC_MARKET.tick_size) == 0 for p in prices)
    assert all(abs(p / BTC_MARKET.mark_price - 1) < Decimal("0.02") for p in prices)


def test_generated_markets_extend_the_defaults() -> None:
    markets = generated_markets(50)
    assert len(markets) == len({m.market_id for m in markets}) == 50
    assert markets[:8] == DEFAULT_MARKETS


def engine_with_events() -> tuple[Engine, list[dict[str, Any]]]:
    state = LoopbackState()
    events: list[dict[str, Any]] = []
    state.sinks.append(events.append)
    return Engine(state), events


def kinds(events: list[dict[str, Any]]) -> list[str]:
    names = []
    for e in events:
        detail = e.get("o", {}).get("X") if e["e"] in ("ORDER_TRADE_UPDATE", "ALGO_UPDATE") else ""
        names.append(f"{e['e']} {detail}".strip())
    return names


def test_a_stop_triggers_when_the_mark_crosses_and_books_its_market_order() -> None:
    engine, events = engine_with_events()
    engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                        "quantity": "0.010", "newClientOrderId": "e1"})  # fmt: skip
    engine.place_algo_order({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                             "algoType": "CONDITIONAL", "quantity": "0.010",
                             "triggerPrice": "95000", "reduceOnly": "true",
                             "workingType": "MARK_PRICE", "clientAlgoId": "s1"})  # fmt: skip
    engine.sync()
    assert engine.state.algo_orders["s1"]["algoStatus"] == "NEW"  # not crossed yet
    events.clear()
    engine.state.marks["BTCUSDT"] = Decimal("94999.9")
    engine.sync()
    assert kinds(events) == [
        "ALGO_UPDATE TRIGGERING", "ALGO_UPDATE TRIGGERED", "ORDER_TRADE_UPDATE NEW",
        "ORDER_TRADE_UPDATE FILLED", "ACCOUNT_UPDATE", "ALGO_UPDATE FINISHED",
    ]  # fmt: skip
    finished = events[-1]["o"]
    assert (finished["aq"], finished["ap"]) == ("0.010", "94999.9")
    assert finished["ai"] == str(engine.state.orders["algo-" + str(finished["aid"])]["orderId"])
    assert engine.state.holdings["BTCUSDT"].amount == 0


def test_a_market_order_filled_later_is_answered_new_and_executes_when_due() -> None:
    engine, events = engine_with_events()
    engine.fill_market_later_ms = 3_000
    state = engine.state
    answer = engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                 "quantity": "0.010", "newClientOrderId": "e1"})  # fmt: skip
    assert (answer["status"], answer["executedQty"], answer["avgPrice"]) == ("NEW", "0", "0.00")
    state.now_ms += 2_999
    engine.sync()
    assert state.orders["e1"]["status"] == "NEW"
    assert state.holding("BTCUSDT").amount == 0
    state.now_ms += 1
    engine.sync()
    assert state.orders["e1"]["status"] == "FILLED"
    assert state.holding("BTCUSDT").amount == Decimal("0.010")
    assert kinds(events) == [
        "ORDER_TRADE_UPDATE NEW",
        "ORDER_TRADE_UPDATE FILLED",
        "ACCOUNT_UPDATE",
    ]


def test_a_flip_opens_the_other_side_at_the_flips_price() -> None:
    """One order of twice the position closes it and opens the other side, whose entry
    price is that order's (was: the old side's kept; found by an outside-style probe,
    2026-12-03, where a person flipped a position by hand and the keeper adopted the rest)."""
    engine, _ = engine_with_events()
    state = engine.state
    state.marks["BTCUSDT"] = Decimal(100_000)
    engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                        "quantity": "0.010", "newClientOrderId": "e1"})  # fmt: skip
    state.marks["BTCUSDT"] = Decimal(101_000)
    engine.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                        "quantity": "0.020", "newClientOrderId": "web1"})  # fmt: skip
    holding = state.holding("BTCUSDT")
    assert (holding.amount, holding.entry) == (Decimal("-0.010"), Decimal(101_000))


def test_an_account_paying_fees_with_bnb_is_charged_bnb_not_usdt() -> None:
    """Binance's shapes for a trade paid in BNB: `commission` in BNB (8 decimals) at the
    discounted taker rate, `commissionAsset` "BNB", the same in the ORDER_TRADE_UPDATE
    ("n"/"N"), and no USDT taken from the wallet for it."""
    engine, events = engine_with_events()
    state = engine.state
    state.commission_asset = "BNB"
    engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                        "quantity": "0.010", "newClientOrderId": "e1"})  # fmt: skip
    [trade] = state.trades
    minute = state.now_ms - state.now_ms % 60_000
    params = {"symbol": "BNBUSDT", "interval": "1m", "startTime": str(minute), "limit": "1"}
    [candle] = state.klines(params)
    bnb = Decimal("1000.0") * Decimal("0.0004") * Decimal("0.9") / Decimal(candle[4])
    assert trade["commissionAsset"] == "BNB"
    assert trade["commission"] == str(bnb.quantize(Decimal("0.00000001")))
    [filled] = [
        e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED"
    ]
    assert (filled["n"], filled["N"]) == (trade["commission"], "BNB")
    assert state.wallet == Decimal(10_000)


async def test_faults_and_outages_can_be_for_one_symbol() -> None:
    async with LoopbackBinance() as server, aiohttp.ClientSession() as session:
        now = server.state.now_ms
        server.outage(Outage("/fapi/v1/klines", now, now + 1, symbol="BNBUSDT"))
        server.inject(Fault("/fapi/v1/klines", status=200, body="[]", symbol="ETHUSDT"))
        url = f"{server.base_url}/fapi/v1/klines"
        answers = []  # (HTTP status, candles answered); only BNBUSDT down, ETHUSDT's once
        for symbol in ("BTCUSDT", "BNBUSDT", "ETHUSDT", "ETHUSDT"):
            params = {"symbol": symbol, "interval": "1m", "limit": "1"}
            async with session.get(url, params=params) as response:
                body = await response.text()
                answers.append((response.status, body if response.status != 200 else body[:2]))
        assert answers == [(200, "[["), (503, "Service Unavailable"), (200, "[]"), (200, "[[")]


async def test_a_second_client_trades_the_same_account_past_every_fault() -> None:
    """A person on the web site: same books and events, none of the API's faults or weight."""
    async with LoopbackBinance() as server, aiohttp.ClientSession() as session:
        events: list[dict[str, Any]] = []
        server.state.sinks.append(events.append)
        server.engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                   "quantity": "0.010", "newClientOrderId": "qt-e-1"})  # fmt: skip
        server.random_faults = RandomFaults(1, unavailable=1.0)
        now = server.state.now_ms
        server.outage(Outage("/fapi/v1/order", now, now + 60_000))
        server.ban(now + 60_000)
        order = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.004",
                 "reduceOnly": "true", "newClientOrderId": "web_1"}  # fmt: skip
        url = f"{server.base_url}/fapi/v1/order"
        async with session.post(url, data=order) as refused:
            assert refused.status == 418  # the API's client is banned
        by_hand = {SECOND_CLIENT: "person"}
        async with session.post(url, data=order, headers=by_hand) as answer:
            assert answer.status == 200
            assert (await answer.json())["status"] == "FILLED"
        assert server.state.holding("BTCUSDT").amount == Decimal("0.006")
        assert [t["orderId"] for t in server.state.trades][-1] == order_id(server, "web_1")
        assert "ORDER_TRADE_UPDATE" in [e["e"] for e in events[-3:]]
        assert [p for _, p, _ in server.requests] == ["/fapi/v1/order"]  # only the API's
        assert server.faulted == []


def order_id(server: LoopbackBinance, client_id: str) -> Any:
    return server.state.orders[client_id]["orderId"]


@pytest.mark.parametrize(
    ("kind", "side", "trigger", "mark", "fires"),
    [
        ("STOP_MARKET", "SELL", "95000", "95000.0", True),
        ("STOP_MARKET", "BUY", "105000", "104999.9", False),
        ("STOP_MARKET", "BUY", "105000", "105000.1", True),
        ("TAKE_PROFIT_MARKET", "SELL", "105000", "105000.0", True),
        ("TAKE_PROFIT_MARKET", "BUY", "95000", "95000.1", False),
    ],
)
def test_trigger_directions(kind: str, side: str, trigger: str, mark: str, fires: bool) -> None:
    engine, _ = engine_with_events()
    engine.place_algo_order({"symbol": "BTCUSDT", "side": side, "type": kind,
                             "algoType": "CONDITIONAL", "quantity": "0.010",
                             "triggerPrice": trigger, "clientAlgoId": "c1"})  # fmt: skip
    engine.state.marks["BTCUSDT"] = Decimal(mark)
    engine.sync()
    status = engine.state.algo_orders["c1"]["algoStatus"]
    assert (status != "NEW") is fires
    if fires:
        assert status == "FINISHED"  # not reduce-only: it opened a position


def test_a_conditional_order_that_would_trigger_at_once_is_refused() -> None:
    engine, _ = engine_with_events()
    with pytest.raises(Exception, match="immediately trigger"):
        engine.place_algo_order({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                                 "algoType": "CONDITIONAL", "quantity": "0.010",
                                 "triggerPrice": "100500"})  # fmt: skip


@pytest.fixture
async def pushing() -> Any:
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        yield server


async def receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    message = await ws.receive(timeout=2)
    return json.loads(message.data)


@pytest.mark.parametrize(
    ("path", "subscribe", "wrapped"),
    [
        ("/market/ws/!markPrice@arr@1s", None, False),  # a raw stream
        ("/market/stream?streams=!markPrice@arr@1s", None, True),  # combined
        ("/market/ws/0", "!markPrice@arr@1s", False),  # what ccxt does: SUBSCRIBE
        ("/ws/!markPrice@arr", None, False),  # the legacy route
    ],
)
async def test_mark_price_stream_addresses(
    pushing: LoopbackBinance, path: str, subscribe: str | None, wrapped: bool
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(pushing.ws_url + path) as ws:
        if subscribe is not None:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": [subscribe], "id": 3}))
            assert await receive(ws) == {"result": None, "id": 3}
        await pushing.streams.tick()
        message = await receive(ws)
        rows = message["data"] if wrapped else message
        if wrapped:
            assert message["stream"] == "!markprice@arr@1s"
        assert {r["s"] for r in rows} == set(pushing.state.markets)
        assert rows[0]["e"] == "markPriceUpdate"


STOP = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
        "quantity": "0.010", "triggerPrice": "90000"}  # fmt: skip


async def test_user_data_addresses_and_the_events_allow_list(pushing: LoopbackBinance) -> None:
    key = pushing.state.create_listen_key()["listenKey"]
    private = f"{pushing.ws_url}/private/ws?listenKey={key}&events=ACCOUNT_CONFIG_UPDATE"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(private) as filtered,
        session.ws_connect(f"{pushing.ws_url}/ws/{key}") as legacy,
    ):
        pushing.engine.place_algo_order(STOP)
        pushing.state.set_leverage({"symbol": "BTCUSDT", "leverage": "3"})
        assert (await receive(legacy))["e"] == "ALGO_UPDATE"
        assert (await receive(legacy))["e"] == "ACCOUNT_CONFIG_UPDATE"
        assert (await receive(filtered))["e"] == "ACCOUNT_CONFIG_UPDATE"  # only what it asked


async def test_a_listen_key_lapses_after_an_hour_without_keep_alive(
    pushing: LoopbackBinance,
) -> None:
    key = pushing.state.create_listen_key()["listenKey"]
    clock = pushing.clock
    assert isinstance(clock, ManualClock)
    url = f"{pushing.ws_url}/private/ws?listenKey={key}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        clock.advance(LISTEN_KEY_VALIDITY_MS / 1000)
        await pushing.streams.tick()
        assert await receive(ws) == {
            "e": "listenKeyExpired", "E": str(pushing.state.now_ms), "listenKey": key
        }  # fmt: skip
    with pytest.raises(Exception, match="listenKey does not exist"):
        pushing.state.keep_alive_listen_key()


async def rest(server: LoopbackBinance, path: str, method: str = "GET") -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.base_url + path) as answer,
    ):
        return answer.status


async def test_outages_and_bans_follow_the_stand_ins_clock(pushing: LoopbackBinance) -> None:
    now = pushing.state.now_ms
    pushing.outage(Outage("/fapi/v3/account", now + 10_000, now + 40_000))
    assert await rest(pushing, "/fapi/v3/account") == 200
    clock = pushing.clock
    assert isinstance(clock, ManualClock)
    clock.advance(10)
    assert await rest(pushing, "/fapi/v3/account") == 503
    assert await rest(pushing, "/fapi/v1/time") == 200  # other routes are up
    clock.advance(30)
    assert await rest(pushing, "/fapi/v3/account") == 200
    pushing.ban(pushing.state.now_ms + 60_000)
    assert await rest(pushing, "/fapi/v1/time") == 418


async def test_weight_is_counted_per_minute_of_the_stand_ins_clock() -> None:
    clock = ManualClock(utc_from_ms(START_MS))
    state = LoopbackState(markets={m.market_id: m for m in generated_markets(50)})
    async with LoopbackBinance(state, clock=clock) as server:
        assert await rest(server, "/fapi/v1/premiumIndex") == 200  # weight 10
        assert await rest(server, "/fapi/v3/positionRisk") == 200  # 5
        clock.advance(61)
        assert await rest(server, "/fapi/v1/openAlgoOrders") == 200  # 40 without a symbol
        assert server.weight_per_minute(START_MS, START_MS + 180_000) == [15, 40, 0]
        assert server.weight_by_route(START_MS, START_MS + 180_000) == {
            "GET /fapi/v1/openAlgoOrders": 40, "GET /fapi/v1/premiumIndex": 10,
            "GET /fapi/v3/positionRisk": 5,
        }  # fmt: skip
        assert len(state.premium_index({})) == 50


async def test_premium_index_of_one_symbol_is_one_object_at_weight_one() -> None:
    """Binance: GET /fapi/v1/premiumIndex with `symbol` answers that symbol's object (weight
    1), without it a list of every symbol's (weight 10); an unknown symbol is HTTP 400 -1121."""
    async with LoopbackBinance() as server, aiohttp.ClientSession() as session:
        url = server.base_url + "/fapi/v1/premiumIndex"
        async with session.get(url, params={"symbol": "ETHUSDT"}) as answer:
            assert answer.status == 200
            one = await answer.json()
        async with session.get(url, params={"symbol": "NOPEUSDT"}) as answer:
            assert answer.status == 400
            assert await answer.json() == {"code": -1121, "msg": "Invalid symbol."}
        async with session.get(url) as answer:
            every = await answer.json()
        assert isinstance(one, dict)
        assert one["symbol"] == "ETHUSDT"
        assert one in every
        assert len(every) == len(server.state.markets)
        assert [entry.weight for entry in server.log] == [1, 1, 10]


def test_random_faults_repeat_for_a_seed() -> None:
    def draws(seed: int) -> list[Fault | None]:
        faults = RandomFaults(seed, lost_answer=0.2, unavailable=0.2, rate_limited=0.1,
                              partial_fill=0.3)  # fmt: skip
        return [faults.draw("POST", "/fapi/v1/order") for _ in range(50)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert any(d is not None and d.fill is not None for d in draws(3))


def test_random_outages_repeat_for_a_seed() -> None:
    paths = ("/fapi/v3/positionRisk", "/fapi/v1/order")
    outages = random_outages(5, paths, START_MS, START_MS + 600_000, count=4)
    assert outages == random_outages(5, paths, START_MS, START_MS + 600_000, count=4)
    assert all(10_000 <= o.end_ms - o.start_ms <= 40_000 for o in outages)
    assert [o.start_ms for o in outages] == sorted(o.start_ms for o in outages)


def test_force_orders_are_listed_as_binance_documents() -> None:
    """A liquidation and an ADL: listed by autoCloseType (neither: both), by the order's time
    (no startTime: the 7 days before endTime), `limit` at most 100; their trades are listed by
    userTrades under the order's id, as any order's."""
    engine, _ = engine_with_events()
    state = engine.state
    engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                        "quantity": "0.010", "newClientOrderId": "e1"})  # fmt: skip
    liquidation = engine.force_close("BTCUSDT", "LIQUIDATION")
    assert state.holding("BTCUSDT").amount == 0
    assert liquidation["clientOrderId"].startswith("autoclose-")
    assert (liquidation["status"], liquidation["side"]) == ("FILLED", "SELL")
    state.now_ms += 8 * 86_400_000
    engine.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                        "quantity": "0.010", "newClientOrderId": "e2"})  # fmt: skip
    adl = engine.force_close("BTCUSDT", "ADL")
    assert adl["clientOrderId"] == "adl_autoclose"

    def ids(**params: str) -> list[int]:
        return [o["orderId"] for o in force_orders(state, {"symbol": "BTCUSDT", **params})]

    assert ids() == [adl["orderId"]]  # the last 7 days
    assert ids(startTime="0") == [liquidation["orderId"], adl["orderId"]]
    assert ids(startTime="0", autoCloseType="ADL") == [adl["orderId"]]
    assert ids(startTime="0", autoCloseType="LIQUIDATION") == [liquidation["orderId"]]
    assert ids(startTime="0", limit="1") == [liquidation["orderId"]]
    with pytest.raises(BinanceError):
        ids(limit="101")
    [trade] = [t for t in state.trades if t["orderId"] == liquidation["orderId"]]
    assert trade["side"] == "SELL"
    assert request_weight("GET", "/fapi/v1/forceOrders", {"symbol": "BTCUSDT"}) == 20
    assert request_weight("GET", "/fapi/v1/forceOrders", {}) == 50


def strict_engine_holding(quantity: str) -> tuple[Engine, list[dict[str, Any]]]:
    engine, events = engine_with_events()
    engine.strict_reduce_only = True
    engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                        "quantity": quantity, "newClientOrderId": "e1"})  # fmt: skip
    events.clear()
    return engine, events


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_a_market_order_larger_than_the_position_closes_what_is_held(strict: bool) -> None:
    """Binance's FAQ exempts reduce-only market orders of the position's size or more from its
    refusal of reduce-only orders larger than the position: what is held executes, the rest
    expires, under `strict_reduce_only` as without it."""
    engine, _ = strict_engine_holding("0.004")
    engine.strict_reduce_only = strict
    close = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "reduceOnly": "true"}
    answer = engine.place_order({**close, "quantity": "0.005", "newClientOrderId": "x1"})
    assert (answer["status"], answer["executedQty"]) == ("EXPIRED", "0.004")
    assert engine.state.holding("BTCUSDT").amount == 0


def test_strict_reduce_only_rejects_a_triggered_take_profit_larger_than_the_position() -> None:
    """A triggered reduce-only take-profit larger than what is held ends REJECTED ("rm" "Reduce
    Only reject"), nothing executed; a stop-market one larger (exempt, as the FAQ says) and a
    close-all one close what is held."""
    engine, events = strict_engine_holding("0.004")
    conditional = {
        "symbol": "BTCUSDT", "side": "SELL", "algoType": "CONDITIONAL", "workingType": "MARK_PRICE",
        "quantity": "0.010", "reduceOnly": "true",
    }  # fmt: skip
    target = {**conditional, "type": "TAKE_PROFIT_MARKET", "triggerPrice": "105000"}
    engine.place_algo_order({**target, "clientAlgoId": "big-target"})
    engine.state.marks["BTCUSDT"] = Decimal("106000")
    engine.sync()
    assert kinds(events) == ["ALGO_UPDATE NEW", "ALGO_UPDATE TRIGGERING", "ALGO_UPDATE REJECTED"]
    assert events[-1]["o"]["rm"] == "Reduce Only reject"
    assert engine.state.holding("BTCUSDT").amount == Decimal("0.004")

    stop = {**conditional, "type": "STOP_MARKET", "triggerPrice": "95000"}
    close_all = {**stop, "closePosition": "true"}
    del close_all["quantity"], close_all["reduceOnly"]
    for client_algo_id, order in (("big-stop", stop), ("all", close_all)):
        engine.state.marks["BTCUSDT"] = Decimal("100000")
        if engine.state.holding("BTCUSDT").amount == 0:
            engine.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                "quantity": "0.004", "newClientOrderId": "e2"})  # fmt: skip
        engine.place_algo_order({**order, "clientAlgoId": client_algo_id})
        engine.state.marks["BTCUSDT"] = Decimal("94000")
        engine.sync()
        assert engine.state.algo_orders[client_algo_id]["algoStatus"] == "FINISHED"
        assert engine.state.holding("BTCUSDT").amount == 0
