"""The paper account's whole mutable state, and its JSON file (written atomically).

Decimals are written as strings, times as ISO-8601 UTC, enums by value, so a new process that
loads the file sees exactly the account the previous one left: positions, open stop orders,
fills, the funding ledger and the instant up to which recorded prices were processed.

Version 2 adds what pruning needs (execution/paper_retention.py): `held`, when each symbol's
recent positions opened and went flat, and `pruned_fills`, the fills forgotten. A version-1
file has nothing pruned yet: it loads with every symbol it names held since 0 (kept whole
while held, or for a week after the load).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from quantum_trader.atomic_file import replace_at, replace_in
from quantum_trader.domain import ZERO, Fill, Order, OrderKind, OrderSide, OrderStatus, Side
from quantum_trader.errors import ConfigurationError, OperatorActionRequired

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_LEVERAGE = 125  # Binance USD-M's highest leverage on any symbol


@dataclass(slots=True)
class PaperPosition:
    """One-way position: `quantity` > 0, `entry_price` is the average fill price."""

    side: Side
    quantity: Decimal
    entry_price: Decimal


@dataclass(slots=True)
class HeldSpan:
    """A position of a symbol, from its opening (`opened_ms`) to the instant the symbol went
    flat (`closed_ms`; None while held). A flip continues it."""

    opened_ms: int
    closed_ms: int | None


@dataclass(slots=True)
class PaperState:
    """Everything the paper exchange knows. Mutated only by the paper exchange's parts: its
    ledger (paper_ledger.py), orders and triggers (paper_orders.py, paper_triggers.py) and
    retention (paper_retention.py).

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
    held: dict[str, list[HeldSpan]] = field(default_factory=dict)
    pruned_fills: int = 0

    def fill_count(self) -> int:
        """Every fill the account ever made: those kept and those pruned."""
        return sum(len(fills) for fills in self.fills.values()) + self.pruned_fills

    def symbols_held(self) -> set[str]:
        """The symbols with a position or a resting stop or target: those the account needs
        prices and rules for."""
        resting = (
            o.symbol
            for o in self.orders.values()
            if o.kind.is_conditional and o.status is OrderStatus.OPEN
        )
        return set(self.positions) | set(resting)


def save_state(path: Path, state: PaperState, directory: int | None = None) -> None:
    """Write `state` to `path` atomically: a crash leaves the old file or the new one.
    `directory`: a descriptor of `path`'s directory as it was opened — written there even
    when its path names another directory by now (moved or replaced under a running daemon:
    ops/data_dir.py), never into that other one. Without it, into the directory as it is: one
    removed is not made again."""
    payload = json.dumps(_encode_state(state), separators=(",", ":"))
    if directory is None:
        replace_at(path, payload, durable=True)
    else:
        replace_in(directory, path.name, payload, durable=True)


def refuse_linked(path: Path) -> None:
    """ConfigurationError when the account's file is a symbolic link: each save replaces it
    inside the data directory, so the link would become a file of its own at the first save
    and the file it named would stay behind, an account no longer kept."""
    if path.is_symlink():
        raise ConfigurationError(
            [
                f"data_dir: the paper account {path} is a symbolic link (to {path.readlink()}): "
                "each save replaces it inside the data directory, leaving the linked file "
                "behind; move that file into the data directory in place of the link, or "
                "point QT_DATA_DIR (or data_dir in the config file) at the directory that "
                "holds it"
            ]
        )


def load_state(path: Path) -> PaperState | None:
    """Read the state file; None if it does not exist.

    A file that cannot be read, is not the JSON this module writes, or holds a value no account
    can have (a NaN or infinite amount, a non-positive quantity or price, leverage outside
    1..125) raises OperatorActionRequired naming the file: it is never replaced by a fresh
    account, since that would forget positions and their stops.
    """
    if not path.exists():
        return None
    try:
        return _decode_state(json.loads(path.read_text(encoding="utf-8")))
    except OSError as error:
        problem = f"cannot be read ({error.strerror})"
        raise OperatorActionRequired(f"paper account {path} {problem}: {_RESTORE}") from None
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as error:
        problem = f"is damaged ({_describe(error)})"
        raise OperatorActionRequired(f"paper account {path} {problem}: {_RESTORE}") from None


_RESTORE = (
    "stop the daemon, then restore the file from a backup, or move it aside together with "
    "quantum_trader.db (and its -wal and -shm files) to start a fresh paper account"
)


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error}"
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error}"
    return str(error) or type(error).__name__


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
        "held": {
            symbol: [[span.opened_ms, span.closed_ms] for span in spans]
            for symbol, spans in state.held.items()
        },
        "pruned_fills": state.pruned_fills,
    }


def _number(value: object, name: str, *, positive: bool = False) -> Decimal:
    """A finite Decimal from the file (strictly positive when `positive`), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name} is {value!r}, not a number")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} is {value!r}, not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name} is {value}")
    if positive and number <= 0:
        raise ValueError(f"{name} is {value}, not above zero")
    return number


def _count(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} is {value!r}, not an integer of at least {minimum}")
    return value


def _decimal_or_none(value: object, name: str) -> Decimal | None:
    return None if value is None else _number(value, name, positive=True)


def _time_or_none(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _decode_order(raw: dict[str, Any]) -> Order:
    name = f"order {raw['client_order_id']}"
    close_all = raw.get("close_position", False)  # absent from files written before it
    if not isinstance(close_all, bool):
        raise ValueError(f"{name} close_position is {close_all!r}, not true or false")
    # A close-all stop has no quantity (it closes whatever is held when it fires).
    quantity = _number(raw["quantity"], f"{name} quantity", positive=not close_all)
    filled = _number(raw["filled_quantity"], f"{name} filled_quantity")
    if filled < 0 or (filled > quantity and not close_all):
        raise ValueError(f"{name} filled_quantity {filled} is outside 0..{quantity}")
    return Order(
        client_order_id=raw["client_order_id"],
        symbol=raw["symbol"],
        side=OrderSide(raw["side"]),
        kind=OrderKind(raw["kind"]),
        quantity=quantity,
        status=OrderStatus(raw["status"]),
        created_at=datetime.fromisoformat(raw["created_at"]),
        exchange_order_id=raw["exchange_order_id"],
        trigger_price=_decimal_or_none(raw["trigger_price"], f"{name} trigger_price"),
        reduce_only=bool(raw["reduce_only"]),
        filled_quantity=filled,
        average_price=_decimal_or_none(raw["average_price"], f"{name} average_price"),
        fee_usdt=_number(raw["fee_usdt"], f"{name} fee_usdt"),
        updated_at=_time_or_none(raw["updated_at"]),
        detail=raw["detail"],
        close_position=close_all,
    )


def _decode_fill(raw: dict[str, Any]) -> Fill:
    name = f"fill {raw['trade_id']}"
    return Fill(
        trade_id=raw["trade_id"],
        client_order_id=raw["client_order_id"],
        symbol=raw["symbol"],
        side=OrderSide(raw["side"]),
        quantity=_number(raw["quantity"], f"{name} quantity", positive=True),
        price=_number(raw["price"], f"{name} price", positive=True),
        fee_usdt=_number(raw["fee_usdt"], f"{name} fee_usdt"),
        time=datetime.fromisoformat(raw["time"]),
        is_maker=bool(raw["is_maker"]),
    )


def _decode_position(symbol: str, raw: list[Any]) -> PaperPosition:
    side, quantity, entry = raw
    return PaperPosition(
        Side(side),
        _number(quantity, f"position {symbol} quantity", positive=True),
        _number(entry, f"position {symbol} entry_price", positive=True),
    )


def _decode_state(raw: dict[str, Any]) -> PaperState:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ValueError(f"unsupported state version {version!r}")
    state = PaperState(
        wallet_usdt=_number(raw["wallet_usdt"], "wallet_usdt"),
        last_ms=_count(raw["last_ms"], "last_ms", 0),
    )
    for symbol, position in raw["positions"].items():
        state.positions[symbol] = _decode_position(symbol, position)
    state.leverage = {symbol: _leverage(symbol, value) for symbol, value in raw["leverage"].items()}
    for order_raw in raw["orders"]:
        order = _decode_order(order_raw)
        state.orders[order.client_order_id] = order
    for fill_raw in raw["fills"]:
        fill = _decode_fill(fill_raw)
        state.fills.setdefault(fill.client_order_id, []).append(fill)
    state.funding = {
        symbol: sorted(
            (
                (_count(time_ms, "funding time", 0), _number(amount, f"funding of {symbol}"))
                for time_ms, amount in entries
            ),
            key=lambda entry: entry[0],
        )
        for symbol, entries in raw["funding"].items()
    }  # in time order, as booked (Ledger.funding_paid bisects them)
    state.realized_pnl_usdt = _number(raw["realized_pnl_usdt"], "realized_pnl_usdt")
    state.fees_usdt = _number(raw["fees_usdt"], "fees_usdt")
    state.funding_usdt = _number(raw["funding_usdt"], "funding_usdt")
    state.next_order_no = _count(raw["next_order_no"], "next_order_no", 1)
    state.next_trade_no = _count(raw["next_trade_no"], "next_trade_no", 1)
    if version == 1:
        state.held = _held_before_version_2(state)
    else:
        state.held = {
            symbol: [_held_span(symbol, span) for span in spans]
            for symbol, spans in raw["held"].items()
        }
        state.pruned_fills = _count(raw["pruned_fills"], "pruned_fills", 0)
    return state


def _held_span(symbol: str, raw: object) -> HeldSpan:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError(f"held span of {symbol} is {raw!r}, not [opened_ms, closed_ms]")
    opened = _count(raw[0], f"held span of {symbol} opened_ms", 0)
    closed = None if raw[1] is None else _count(raw[1], f"held span of {symbol} closed_ms", opened)
    return HeldSpan(opened, closed)


def _held_before_version_2(state: PaperState) -> dict[str, list[HeldSpan]]:
    """A version-1 account never recorded when its positions opened: every symbol it names is
    taken as held since 0, the held ones still held, the others flat since the load."""
    named = {o.symbol for o in state.orders.values()} | set(state.funding)
    named |= {f.symbol for fills in state.fills.values() for f in fills}
    return {
        symbol: [HeldSpan(0, None if symbol in state.positions else state.last_ms)]
        for symbol in sorted(named | set(state.positions))
    }


def _leverage(symbol: str, value: object) -> int:
    leverage = _count(value, f"leverage of {symbol}", 1)
    if leverage > MAX_LEVERAGE:
        raise ValueError(f"leverage of {symbol} is {leverage}, above Binance's {MAX_LEVERAGE}")
    return leverage
