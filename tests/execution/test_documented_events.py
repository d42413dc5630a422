"""Binance's documented user-data payloads, copied from its pages, through the real parser and
mirror: every field as Binance writes it (numbers as strings, ids as numbers, E as a string
where Binance sends one), every documented status and execution type, fields that may be
absent, and the events we do not use.

Sources (developers.binance.com, derivatives/usds-margined-futures/user-data-streams/):
Event-Order-Update, Event-Algo-Order-Update, Event-Balance-and-Position-Update,
Event-User-Data-Stream-Expired, Event-Trade-Lite, and the STP FAQ's EXPIRED_IN_MATCH example.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ExchangeSnapshot, OrderKind, OrderStatus, SnapshotSource
from quantum_trader.execution.account_mirror import AccountMirror
from quantum_trader.execution.binance_events import (
    AccountUpdate,
    AlgoUpdate,
    LeverageUpdate,
    ListenKeyExpired,
    OrderUpdate,
    TradeReported,
    UserEvent,
    parse_user_event,
)

BTC, BNB = "BTC/USDT:USDT", "BNB/USDT:USDT"
IDS = {"BTCUSDT": BTC, "BNBUSDT": BNB}
NOW = utc_from_ms(1750515743000)  # a second after the documented algo example


def documented_order_update(**changes: Any) -> dict[str, Any]:
    """Event-Order-Update's example, with `changes` to its "o" object."""
    return {
        "e": "ORDER_TRADE_UPDATE", "E": 1568879465651, "T": 1568879465650,
        "o": {
            "s": "BTCUSDT", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC",
            "q": "0.001", "p": "0", "ap": "0", "sp": "7103.04", "x": "NEW", "X": "NEW",
            "i": 8886774, "l": "0", "z": "0", "L": "0", "N": "USDT", "n": "0",
            "T": 1568879465650, "t": 0, "b": "0", "a": "9.91", "m": False, "R": False,
            "wt": "CONTRACT_PRICE", "ot": "TRAILING_STOP_MARKET", "ps": "LONG", "cp": False,
            "AP": "7476.89", "cr": "5.0", "pP": False, "si": 0, "ss": 0, "rp": "0",
            "V": "EXPIRE_TAKER", "pm": "OPPONENT", "gtd": 0, "er": "0",
        } | changes,
    }  # fmt: skip


def documented_algo_update(**changes: Any) -> dict[str, Any]:
    """Event-Algo-Order-Update's example, with `changes` to its "o" object."""
    return {
        "e": "ALGO_UPDATE", "T": 1750515742297, "E": 1750515742303,
        "o": {
            "caid": "Q5xaq5EGKgXXa0fD7fs0Ip", "aid": 2148719, "at": "CONDITIONAL",
            "o": "TAKE_PROFIT", "s": "BNBUSDT", "S": "SELL", "ps": "BOTH", "f": "GTC",
            "q": "0.01", "X": "CANCELED", "ai": "", "ap": "0.00000", "aq": "0.00000",
            "act": "0", "tp": "750", "p": "750", "V": "EXPIRE_MAKER", "wt": "CONTRACT_PRICE",
            "pm": "NONE", "cp": False, "pP": False, "R": False, "tt": 0, "gtd": 0,
            "rm": "Reduce Only reject",
        } | changes,
    }  # fmt: skip


DOCUMENTED_ACCOUNT_UPDATE: dict[str, Any] = {
    "e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938,
    "a": {
        "m": "ORDER",
        "B": [
            {"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"},
            {"a": "BUSD", "wb": "1.00000000", "cw": "0.00000000", "bc": "-49.12345678"},
        ],
        "P": [
            {"s": "BTCUSDT", "pa": "0", "ep": "0.00000", "bep": "0", "cr": "200", "up": "0",
             "mt": "isolated", "iw": "0.00000000", "ps": "BOTH"},
            {"s": "BTCUSDT", "pa": "20", "ep": "6563.66500", "bep": "6563.6", "cr": "0",
             "up": "2850.21200", "mt": "isolated", "iw": "13200.70726908", "ps": "LONG"},
            {"s": "BTCUSDT", "pa": "-10", "ep": "6563.86000", "bep": "6563.6",
             "cr": "-45.04000000", "up": "-1423.15600", "mt": "isolated",
             "iw": "6570.42511771", "ps": "SHORT"},
        ],
    },
}  # fmt: skip


def parse(payload: dict[str, Any]) -> UserEvent:
    event = parse_user_event(payload, IDS)
    assert event is not None
    return event


# -- ORDER_TRADE_UPDATE ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("NEW", OrderStatus.OPEN),
        ("PARTIALLY_FILLED", OrderStatus.OPEN),
        ("FILLED", OrderStatus.FILLED),
        ("CANCELED", OrderStatus.CANCELED),
        ("EXPIRED", OrderStatus.EXPIRED),
        ("EXPIRED_IN_MATCH", OrderStatus.EXPIRED),
    ],
)
@pytest.mark.parametrize("execution", ["NEW", "CANCELED", "CALCULATED", "EXPIRED", "TRADE",
                                       "AMENDMENT"])  # fmt: skip
def test_every_documented_order_status_and_execution_type_is_read(
    status: str, ours: OrderStatus, execution: str
) -> None:
    payload = documented_order_update(o="MARKET", ot="MARKET", ps="BOTH", X=status, x=execution)
    event = parse(payload)
    assert isinstance(event, OrderUpdate)
    assert event.order.status is ours
    assert event.order.exchange_order_id == "8886774"
    assert event.order.quantity == Decimal("0.001")
    assert event.time_ms == 1568879465650


def test_the_stp_faqs_expired_in_match_example_is_an_expired_order() -> None:
    payload = documented_order_update(o="MARKET", ot="MARKET", x="EXPIRED", X="EXPIRED_IN_MATCH")
    event = parse(payload)
    assert isinstance(event, OrderUpdate)
    assert event.order.status is OrderStatus.EXPIRED
    assert event.order.filled_quantity == 0
    assert event.order.average_price is None


@pytest.mark.parametrize("absent", [("n", "N"), ("n", "N", "rp", "si", "ss", "er", "V", "pm")])
def test_an_order_update_without_commission_or_optional_fields_is_read(
    absent: tuple[str, ...],
) -> None:
    """Binance pushes "n"/"N" only when a commission was charged (older pages say so)."""
    payload = documented_order_update(o="MARKET", ot="MARKET", x="TRADE", X="FILLED", z="0.001",
                                      ap="7100.5", l="0.001", L="7100.5")  # fmt: skip
    for name in absent:
        del payload["o"][name]
    event = parse(payload)
    assert isinstance(event, OrderUpdate)
    assert (event.order.status, event.order.average_price) == (OrderStatus.FILLED,
                                                               Decimal("7100.5"))  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the documented TRAILING_STOP_MARKET
        {"o": "STOP_MARKET", "ot": "STOP_MARKET"},
        {"o": "MARKET", "ot": "STOP_MARKET"},  # the market order a triggered stop became
        {"o": "MARKET", "ot": "TAKE_PROFIT_MARKET"},
        {"o": "LIQUIDATION", "ot": "LIQUIDATION", "c": "autoclose-1"},
        {"o": "LIMIT", "ot": "LIMIT", "x": "AMENDMENT"},
    ],
    ids=["trailing", "stop", "triggered-stop", "triggered-tp", "liquidation", "limit-amended"],
)
def test_order_updates_of_conditional_or_foreign_types_are_not_mirrored(
    changes: dict[str, Any],
) -> None:
    assert parse_user_event(documented_order_update(**changes), IDS) is None


# -- ALGO_UPDATE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("NEW", OrderStatus.OPEN),
        ("TRIGGERING", OrderStatus.OPEN),
        ("TRIGGERED", OrderStatus.OPEN),
        ("CANCELED", OrderStatus.CANCELED),
        ("REJECTED", OrderStatus.REJECTED),
        ("EXPIRED", OrderStatus.EXPIRED),
        ("FINISHED", OrderStatus.EXPIRED),  # aq "0.00000": nothing executed
    ],
)
def test_every_documented_algo_status_is_read(status: str, ours: OrderStatus) -> None:
    event = parse(documented_algo_update(o="TAKE_PROFIT_MARKET", X=status))
    assert isinstance(event, AlgoUpdate)
    assert (event.order.status, event.raw_status) == (ours, status)
    assert event.order.client_order_id == "Q5xaq5EGKgXXa0fD7fs0Ip"
    assert event.order.exchange_order_id == "2148719"
    assert event.order.kind is OrderKind.TAKE_PROFIT_MARKET
    assert event.order.filled_quantity == 0
    assert event.time_ms == 1750515742303
    firing = status in ("TRIGGERING", "TRIGGERED")
    assert event.order.triggered_at == (utc_from_ms(1750515742303) if firing else None)


def test_an_algo_update_without_its_actual_order_fields_is_read() -> None:
    """Binance shows "ap", "aq" and "act" only once the order is in the matching engine."""
    payload = documented_algo_update(o="STOP_MARKET", X="NEW")
    for name in ("ap", "aq", "act", "rm", "ai"):
        del payload["o"][name]
    event = parse(payload)
    assert isinstance(event, AlgoUpdate)
    assert (event.order.status, event.order.filled_quantity) == (OrderStatus.OPEN, Decimal(0))


def test_a_triggered_and_a_finished_stop_as_binance_sent_them() -> None:
    """TRIGGERED as Binance sent it (NautilusTrader issue 3287, 2025-12-11), then FINISHED."""
    triggered: dict[str, Any] = {"e": "ALGO_UPDATE", "T": 1765431097030, "E": 1765431097037, "o": {
        "caid": "qt-s-1", "aid": 1000000033225453, "at": "CONDITIONAL", "o": "STOP_MARKET",
        "s": "BTCUSDT", "S": "BUY", "ps": "BOTH", "f": "GTC", "q": "38", "X": "TRIGGERED",
        "ai": "88937381063", "ap": "0", "aq": "0", "act": "MARKET", "tp": "0.13855", "p": "0",
        "V": "EXPIRE_MAKER", "wt": "CONTRACT_PRICE", "pm": "NONE", "cp": False, "pP": False,
        "R": False, "tt": 1765431097019, "gtd": 0}}  # fmt: skip
    event = parse(triggered)
    assert isinstance(event, AlgoUpdate)
    assert event.order.status is OrderStatus.OPEN
    assert event.order.triggered_at == utc_from_ms(1765431097019)
    assert event.order.detail == "88937381063"
    finished = {**triggered, "o": triggered["o"] | {"X": "FINISHED", "ap": "0.13861", "aq": "38"}}
    done = parse(finished)
    assert isinstance(done, AlgoUpdate)
    assert (done.order.status, done.order.filled_quantity, done.order.average_price) == (
        OrderStatus.FILLED, Decimal(38), Decimal("0.13861"))  # fmt: skip


def test_an_algo_update_without_reduce_only_does_not_say() -> None:
    """ "R" left out is not stated (None), not false; with "cp" true the order only closes."""
    payload = documented_algo_update(o="STOP_MARKET", X="NEW")
    del payload["o"]["R"]
    event = parse(payload)
    assert isinstance(event, AlgoUpdate)
    assert event.order.reduce_only is None
    payload["o"]["cp"] = True
    closing = parse(payload)
    assert isinstance(closing, AlgoUpdate)
    assert closing.order.reduce_only is True


@pytest.mark.parametrize("quantity", [None, ""])
def test_a_close_position_stop_without_a_quantity_is_read(quantity: str | None) -> None:
    payload = documented_algo_update(o="STOP_MARKET", X="NEW", cp=True)
    if quantity is None:
        del payload["o"]["q"]
    else:
        payload["o"]["q"] = quantity
    event = parse(payload)
    assert isinstance(event, AlgoUpdate)
    assert (event.order.quantity, event.order.status) == (Decimal(0), OrderStatus.OPEN)
    assert event.order.close_position


@pytest.mark.parametrize("order_type", ["LIQUIDATION", "LIMIT", "MARKET"])
def test_a_liquidations_calculated_execution_is_a_reported_trade(order_type: str) -> None:
    """ "CALCULATED - Liquidation Execution": the liquidation's fill, counted as a trade the
    keeper may not find listed yet (was: only execution type TRADE counted)."""
    payload = documented_order_update(
        o=order_type, ot=order_type, c="autoclose-1", ps="BOTH", x="CALCULATED", X="FILLED",
        l="0.001", z="0.001", L="7100.5", ap="7100.5", t=7,
    )  # fmt: skip
    event = parse(payload)
    if isinstance(event, OrderUpdate):  # a market one is mirrored as any order not ours
        assert event.trade_id == "7"
    else:
        assert isinstance(event, TradeReported)
        assert (event.symbol, event.trade_id) == (BTC, "7")


def test_the_documented_algo_example_of_a_limit_type_is_not_mirrored() -> None:
    assert parse_user_event(documented_algo_update(), IDS) is None  # "o": "TAKE_PROFIT"


# -- ACCOUNT_UPDATE, listenKeyExpired, ACCOUNT_CONFIG_UPDATE -------------------------------


def test_the_documented_account_update_keeps_the_one_way_row_only() -> None:
    event = parse(DOCUMENTED_ACCOUNT_UPDATE)
    assert isinstance(event, AccountUpdate)
    assert event.time_ms == 1564745798938
    assert [(p.symbol, p.amount) for p in event.positions] == [(BTC, Decimal(0))]


BALANCE_REASONS = ["FUNDING_FEE", "DEPOSIT", "WITHDRAW", "ADJUSTMENT", "INSURANCE_CLEAR",
                   "MARGIN_TRANSFER", "ASSET_TRANSFER"]  # fmt: skip


@pytest.mark.parametrize("reason", BALANCE_REASONS)
def test_an_account_update_of_balances_only_changes_no_position(reason: str) -> None:
    """A crossed position's funding fee: "B" only, no "P" (Binance's note on FUNDING FEE)."""
    payload = {**DOCUMENTED_ACCOUNT_UPDATE, "a": {"m": reason, "B": DOCUMENTED_ACCOUNT_UPDATE[
        "a"]["B"][:1]}}  # fmt: skip
    event = parse(payload)
    assert isinstance(event, AccountUpdate)
    assert event.positions == ()
    mirror = seeded_mirror()
    mirror.apply(event, NOW)
    assert mirror.snapshot(NOW).positions == {}


@pytest.mark.parametrize("time", ["1736996475556", 1736996475556])
def test_listen_key_expired_with_its_time_as_a_string_or_a_number(time: str | int) -> None:
    key = "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"
    payload = {"e": "listenKeyExpired", "E": time, "listenKey": key}
    assert parse_user_event(payload, IDS) == ListenKeyExpired(1736996475556)


def test_the_documented_leverage_update() -> None:
    payload = {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1611646737479, "T": 1611646737476,
               "ac": {"s": "BTCUSDT", "l": 25}}  # fmt: skip
    assert parse_user_event(payload, IDS) == LeverageUpdate(BTC, 25, 1611646737476)


@pytest.mark.parametrize(
    "payload",
    [
        {"e": "TRADE_LITE", "E": 1721895408092, "T": 1721895408214, "s": "BTCUSDT",
         "q": "0.001", "p": "0", "m": False, "c": "z8hcUoOsqEdKMeKPSABslD", "S": "BUY",
         "L": "64089.20", "l": "0.040", "t": 109100866, "i": 8886774},
        {"e": "MARGIN_CALL", "E": 1587727187525, "cw": "3.16812045", "p": [
            {"s": "ETHUSDT", "ps": "LONG", "pa": "1.327", "mt": "CROSSED", "iw": "0",
             "mp": "187.17127", "up": "-1.166074", "mm": "1.614445"}]},
        {"e": "CONDITIONAL_ORDER_TRIGGER_REJECT", "E": 1685517224945, "T": 1685517224955,
         "or": {"s": "ETHUSDT", "i": 155618472834,
                "r": "Due to the order could not be filled immediately, the FOK order has "
                     "been rejected. The order will not be recorded in the order history."}},
        {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1611646737479, "T": 1611646737476,
         "ai": {"j": True}},
        {"e": "STRATEGY_UPDATE", "T": 1669262908216, "E": 1669262908218,
         "su": {"si": 176054594, "st": "GRID", "ss": "NEW", "s": "BTCUSDT",
                "ut": 1669262908216, "c": 9}},
        {"e": "GRID_UPDATE", "T": 1669262908216, "E": 1669262908218,
         "gu": {"si": 176057039, "st": "GRID", "ss": "WORKING", "s": "BTCUSDT", "r": "-0.00300716",
                "up": "16720", "uq": "-0.001", "uf": "-0.00300716", "mp": "0.0",
                "ut": 1669262908197}},
        {"e": "SOMETHING_NEW", "E": 1},
    ],
    ids=["trade-lite", "margin-call", "trigger-reject", "multi-assets", "strategy", "grid",
         "future-event"],
)  # fmt: skip
def test_events_we_do_not_use_are_ignored(payload: dict[str, Any]) -> None:
    assert parse_user_event(payload, IDS) is None
    assert parse_user_event({"stream": "key", "data": payload}, IDS) is None


# -- the mirror ------------------------------------------------------------------------------


def seeded_mirror() -> AccountMirror:
    mirror = AccountMirror(replay_s=300, keep_final_s=3600)
    mirror.seed(ExchangeSnapshot(NOW - timedelta(seconds=1), SnapshotSource.REST, {}, ()),
                {BTC: 5, BNB: 5})  # fmt: skip
    return mirror


@pytest.mark.parametrize("child_type", ["MARKET", "STOP_MARKET"])
def test_a_plain_order_update_under_a_stops_id_never_replaces_the_stop(child_type: str) -> None:
    """Should the market order a triggered stop became carry the stop's client id (Binance
    does not document which id it carries), the stop stays as ALGO_UPDATE reports it."""
    stop = {"o": "STOP_MARKET", "caid": "qt-s-1", "s": "BTCUSDT", "q": "0.001", "tp": "95000"}
    child = documented_order_update(c="qt-s-1", o="MARKET", ot=child_type, ps="BOTH", x="TRADE",
                                    X="FILLED", z="0.001", ap="94990", T=1750515742400)  # fmt: skip
    mirror = seeded_mirror()
    mirror.apply(parse(documented_algo_update(**stop, X="NEW")), NOW)
    child_event = parse_user_event(child, IDS)
    if child_event is not None:
        assert mirror.apply(child_event, NOW) is False
    held = mirror.snapshot(NOW)
    assert [o.client_order_id for o in held.open_conditional_orders] == ["qt-s-1"]
    assert held.orders["qt-s-1"].kind is OrderKind.STOP_MARKET
    finished = documented_algo_update(**stop, X="FINISHED", aq="0.001", ap="94990",
                                      ai="8886774")  # fmt: skip
    mirror.apply(parse(finished), NOW)
    final = mirror.snapshot(NOW).orders["qt-s-1"]
    assert (final.kind, final.status, final.filled_quantity) == (
        OrderKind.STOP_MARKET, OrderStatus.FILLED, Decimal("0.001"))  # fmt: skip
