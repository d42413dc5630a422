"""The paper account's whole mutable state, and its JSON file (written atomically).

Decimals are written as strings, times as ISO-8601 UTC, enums by value, so a new process that
loads the file sees exactly the account the previous one left: positions, open stop orders,
fills, the funding ledger and the instant up to which recorded prices were processed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from quantum_trader.domain import ZERO, Fill, Order, OrderKind, OrderSide, OrderStatus, Side
from quantum_trader.errors import OperatorActionRequired

STATE_VERSION = 1


@dataclass(slots=True)
class PaperPosition:
    """One-way position: `quantity` > 0, `entry_price` is the average fill price."""

    side: Side
    quantity: Decimal
    entry_price: Decimal


@dataclass(slots=True)
class PaperState:
    """Everything the paper exchange knows. Mutated only by `PaperBook`.

    Invariant: wallet = initial + realized PnL − fees − funding (all in USDT).
    """

    wallet_usdt: Decimal
    last_ms: int
    positions: dict[str, PaperPosition] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: dict[str, list[Fill]] = field(default_factory=dict)
    funding: dict[str, list[tuple[int, Decimal]]] = field(default_factory=dict)
    realized_pnl_usdt: Decimal = ZERO
    fees_usdt: Decimal = ZERO
    funding_usdt: Decimal = ZERO
    next_order_no: int = 1
    next_trade_no: int = 1


def save_state(path: Path, state: PaperState) -> None:
    """Write `state` to `path` atomically: a crash leaves the old file or the new one."""
    payload = json.dumps(_encode_state(state), separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> PaperState | None:
    """Read the state file; None if it does not exist. A corrupt file needs an operator."""
    if not path.is_file():
        return None
    try:
        return _decode_state(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise OperatorActionRequired(
            f"paper exchange state {path} is unreadable ({error}); move it away to start fresh"
        ) from error


def _encode_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


def _encode_record(record: Order | Fill) -> dict[str, object]:
    return {f.name: _encode_value(getattr(record, f.name)) for f in fields(record)}


def _encode_state(state: PaperState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "wallet_usdt": str(state.wallet_usdt),
        "last_ms": state.last_ms,
        "positions": {
            symbol: [p.side.value, str(p.quantity), str(p.entry_price)]
            for symbol, p in state.positions.items()
        },
        "leverage": state.leverage,
        "orders": [_encode_record(order) for order in state.orders.values()],
        "fills": [_encode_record(fill) for fills in state.fills.values() for fill in fills],
        "funding": {
            symbol: [[time_ms, str(amount)] for time_ms, amount in entries]
            for symbol, entries in state.funding.items()
        },
        "realized_pnl_usdt": str(state.realized_pnl_usdt),
        "fees_usdt": str(state.fees_usdt),
        "funding_usdt": str(state.funding_usdt),
        "next_order_no": state.next_order_no,
        "next_trade_no": state.next_trade_no,
    }


def _decimal_or_none(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _time_or_none(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _decode_order(raw: dict[str, Any]) -> Order:
    return Order(
        client_order_id=raw["client_order_id"],
        symbol=raw["symbol"],
        side=OrderSide(raw["side"]),
        kind=OrderKind(raw["kind"]),
        quantity=Decimal(raw["quantity"]),
        status=OrderStatus(raw["status"]),
        created_at=datetime.fromisoformat(raw["created_at"]),
        exchange_order_id=raw["exchange_order_id"],
        trigger_price=_decimal_or_none(raw["trigger_price"]),
        reduce_only=bool(raw["reduce_only"]),
        filled_quantity=Decimal(raw["filled_quantity"]),
        average_price=_decimal_or_none(raw["average_price"]),
        fee_usdt=Decimal(raw["fee_usdt"]),
        updated_at=_time_or_none(raw["updated_at"]),
        detail=raw["detail"],
    )


def _decode_fill(raw: dict[str, Any]) -> Fill:
    return Fill(
        trade_id=raw["trade_id"],
        client_order_id=raw["client_order_id"],
        symbol=raw["symbol"],
        side=OrderSide(raw["side"]),
        quantity=Decimal(raw["quantity"]),
        price=Decimal(raw["price"]),
        fee_usdt=Decimal(raw["fee_usdt"]),
        time=datetime.fromisoformat(raw["time"]),
        is_maker=bool(raw["is_maker"]),
    )


def _decode_state(raw: dict[str, Any]) -> PaperState:
    if raw.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported state version {raw.get('version')!r}")
    state = PaperState(wallet_usdt=Decimal(raw["wallet_usdt"]), last_ms=int(raw["last_ms"]))
    for symbol, (side, quantity, entry) in raw["positions"].items():
        state.positions[symbol] = PaperPosition(Side(side), Decimal(quantity), Decimal(entry))
    state.leverage = {symbol: int(value) for symbol, value in raw["leverage"].items()}
    for order_raw in raw["orders"]:
        order = _decode_order(order_raw)
        state.orders[order.client_order_id] = order
    for fill_raw in raw["fills"]:
        fill = _decode_fill(fill_raw)
        state.fills.setdefault(fill.client_order_id, []).append(fill)
    state.funding = {
        symbol: [(int(time_ms), Decimal(amount)) for time_ms, amount in entries]
        for symbol, entries in raw["funding"].items()
    }
    state.realized_pnl_usdt = Decimal(raw["realized_pnl_usdt"])
    state.fees_usdt = Decimal(raw["fees_usdt"])
    state.funding_usdt = Decimal(raw["funding_usdt"])
    state.next_order_no = int(raw["next_order_no"])
    state.next_trade_no = int(raw["next_trade_no"])
    return state
