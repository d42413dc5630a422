"""JSON shapes of the stand-in's answers and events, as Binance documents them (numbers as
strings): REST orders, algo orders and trades; ORDER_TRADE_UPDATE (commission "n"/"N" only when
one was charged), ALGO_UPDATE ("aq"/"ap"/"act" once in the matching engine, "rm" when
rejected), ACCOUNT_UPDATE and listenKeyExpired (its "E" a string, as fstream sends it)
user-data events; markPriceUpdate rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

TAKER_FEE = Decimal("0.0004")
MAKER_FEE = Decimal("0.0002")  # Binance's USD-M regular rate for a resting order's fill
BNB_DISCOUNT = Decimal("0.9")  # "a 10% discount on standard trading fees" paid in BNB
Commission = tuple[str, str]  # (commission, commissionAsset) as Binance writes them


def order_json(
    order_id: int, client_id: str, params: dict[str, str], quantity: Decimal, now_ms: int
) -> dict[str, Any]:
    """A new MARKET order (POST/GET /fapi/v1/order), nothing executed yet."""
    return {
        "orderId": order_id,
        "clientOrderId": client_id,
        "symbol": params["symbol"],
        "status": "NEW",
        "type": "MARKET",
        "origType": "MARKET",
        "side": params["side"],
        "positionSide": "BOTH",
        "origQty": str(quantity),
        "executedQty": "0",
        "cumQuote": "0",
        "avgPrice": "0",
        "price": "0",
        "stopPrice": "0",
        "reduceOnly": params.get("reduceOnly") == "true",
        "closePosition": False,
        "timeInForce": "GTC",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": now_ms,
        "updateTime": now_ms,
    }


def trade_json(
    trade_id: int,
    order: dict[str, Any],
    quantity: Decimal,
    price: Decimal,
    now_ms: int,
    commission: Commission | None = None,
    maker: bool = False,
) -> dict[str, Any]:
    """One execution (GET /fapi/v1/userTrades), the taker's unless `maker`; its commission
    in USDT at the taker rate unless `commission` says otherwise."""
    amount, asset = commission or (str(quantity * price * TAKER_FEE), "USDT")
    return {
        "id": trade_id,
        "orderId": order["orderId"],
        "symbol": order["symbol"],
        "side": order["side"],
        "price": str(price),
        "qty": str(quantity),
        "quoteQty": str(quantity * price),
        "commission": amount,
        "commissionAsset": asset,
        "realizedPnl": "0",
        "positionSide": "BOTH",
        "maker": maker,
        "buyer": order["side"] == "BUY",
        "time": now_ms,
    }


def algo_json(
    algo_id: int, client_id: str, params: dict[str, str], quantity: Decimal, now_ms: int
) -> dict[str, Any]:
    """A new conditional order (POST/GET /fapi/v1/algoOrder)."""
    return {
        "algoId": algo_id,
        "clientAlgoId": client_id,
        "algoType": "CONDITIONAL",
        "orderType": params["type"],
        "symbol": params["symbol"],
        "side": params["side"],
        "positionSide": "BOTH",
        "timeInForce": "GTE_GTC" if params.get("closePosition") == "true" else "GTC",
        "quantity": str(quantity),
        "algoStatus": "NEW",
        "actualOrderId": "",
        "actualPrice": "0.00000",
        "triggerPrice": params["triggerPrice"],
        "price": "0.00",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": params.get("workingType", "CONTRACT_PRICE"),
        "priceMatch": "NONE",
        "closePosition": params.get("closePosition") == "true",
        "priceProtect": params.get("priceProtect", "FALSE").upper() == "TRUE",
        # A close-all order only closes: Binance lists it reduce-only.
        "reduceOnly": params.get("reduceOnly") == "true" or params.get("closePosition") == "true",
        "createTime": now_ms,
        "updateTime": now_ms,
        "triggerTime": 0,
        "goodTillDate": 0,
    }


def order_trade_update(
    order: dict[str, Any],
    execution: str,
    last: tuple[Decimal, Decimal, int] | None,
    now_ms: int,
    commission: Commission | None = None,
    maker: bool = False,
) -> dict[str, Any]:
    """ORDER_TRADE_UPDATE for `order` (REST shape); `last` = (quantity, price, trade id), the
    taker's unless `maker`, its commission in USDT at the taker rate unless `commission` says
    otherwise."""
    quantity, price, trade_id = last or (Decimal(0), Decimal(0), 0)
    body: dict[str, Any] = {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "o": {
            "s": order["symbol"],
            "c": order["clientOrderId"],
            "S": order["side"],
            "o": order["type"],
            "f": "GTC",
            "q": order["origQty"],
            "p": order["price"],
            "ap": order["avgPrice"],
            "sp": "0",
            "x": execution,
            "X": order["status"],
            "i": order["orderId"],
            "l": str(quantity),
            "z": order["executedQty"],
            "L": str(price),
            "T": now_ms,
            "t": trade_id,
            "b": "0",
            "a": "0",
            "m": maker,
            "R": order["reduceOnly"],
            "wt": "CONTRACT_PRICE",
            "ot": order["origType"],
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
            "er": "0",
        },
    }
    if quantity > 0:  # "n"/"N": not pushed when no commission was charged
        amount, asset = commission or (str(quantity * price * TAKER_FEE), "USDT")
        body["o"] |= {"N": asset, "n": amount}
    return body


def algo_update(
    algo: dict[str, Any], now_ms: int, execution: tuple[Decimal, Decimal] | None = None
) -> dict[str, Any]:
    """ALGO_UPDATE for `algo` (REST shape); `execution` = (executed quantity, average price)
    of its actual order, sent as aq/ap once it is known."""
    body = {
        "caid": algo["clientAlgoId"],
        "aid": algo["algoId"],
        "at": "CONDITIONAL",
        "o": algo["orderType"],
        "s": algo["symbol"],
        "S": algo["side"],
        "ps": "BOTH",
        "f": "GTC",
        "q": algo["quantity"],
        "X": algo["algoStatus"],
        "ai": algo["actualOrderId"],
        "tp": algo["triggerPrice"],
        "p": "0",
        "V": "EXPIRE_MAKER",
        "wt": algo["workingType"],
        "pm": "NONE",
        "cp": algo["closePosition"],
        "pP": algo["priceProtect"],
        "R": algo["reduceOnly"],
        "tt": algo["triggerTime"],
        "gtd": 0,
    }
    if execution is not None:
        body |= {"aq": str(execution[0]), "ap": str(execution[1]), "act": "MARKET"}
    elif algo["algoStatus"] == "TRIGGERED":  # in the matching engine, nothing executed yet
        body |= {"aq": "0", "ap": "0", "act": "MARKET"}
    if algo["algoStatus"] == "REJECTED":
        body["rm"] = "Reduce Only reject"
    return {"e": "ALGO_UPDATE", "T": now_ms, "E": now_ms, "o": body}


def account_update(
    rows: list[dict[str, str]], wallet: Decimal, reason: str, now_ms: int
) -> dict[str, Any]:
    """ACCOUNT_UPDATE with the USDT balance and the changed positions' `P` rows."""
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "a": {
            "m": reason,
            "B": [{"a": "USDT", "wb": str(wallet), "cw": str(wallet), "bc": "0"}],
            "P": rows,
        },
    }


def mark_price_row(
    market_id: str, price: Decimal, now_ms: int, next_funding_ms: int
) -> dict[str, Any]:
    """One markPriceUpdate of the `!markPrice@arr` stream."""
    return {
        "e": "markPriceUpdate",
        "E": now_ms,
        "s": market_id,
        "p": str(price),
        "ap": str(price),
        "P": str(price),
        "i": str(price),
        "r": "0.00010000",
        "T": next_funding_ms,
    }


def listen_key_expired(key: str, now_ms: int) -> dict[str, Any]:
    """listenKeyExpired, its event time a string (Binance's example; go-binance issue 510)."""
    return {"e": "listenKeyExpired", "E": str(now_ms), "listenKey": key}
