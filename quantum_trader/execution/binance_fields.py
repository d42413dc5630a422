"""One field of a Binance USD-M answer, read or refused: a missing field, a number that is not
a finite number (or not positive where asked), an integer that is not one, a side that is not
BUY or SELL, a time no date can hold is a MarketDataError naming the answer and the field,
never a silent zero nor a ValueError that no caller reads as a malformed answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import OrderSide
from quantum_trader.errors import MarketDataError

Payload = Mapping[str, Any]
_SIDES = frozenset(side.value for side in OrderSide)


def field(payload: Payload, name: str, what: str) -> Any:
    """Return `payload[name]`; raise MarketDataError naming `what` and the field if absent."""
    if not isinstance(payload, Mapping):
        raise MarketDataError(f"{what}: expected an object, got {type(payload).__name__}")
    value = payload.get(name)
    if value is None:
        raise MarketDataError(f"{what}: missing field {name!r}")
    return value


def decimal_field(
    payload: Payload, name: str, what: str, *, positive: bool = False, minimum: bool = False
) -> Decimal:
    """Parse a finite Decimal field (strictly positive when `positive`; not negative when
    `minimum`: a minimum of 0 is none, a negative one no rule Binance sends)."""
    raw = field(payload, name, what)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise MarketDataError(f"{what}: field {name!r} is not a number: {raw!r}") from None
    if not value.is_finite():
        raise MarketDataError(f"{what}: field {name!r} is not finite: {raw!r}")
    if positive and value <= 0:
        raise MarketDataError(f"{what}: field {name!r} must be positive, got {raw!r}")
    if minimum and value < 0:
        raise MarketDataError(f"{what}: field {name!r} must not be negative, got {raw!r}")
    return value


def int_field(payload: Payload, name: str, what: str) -> int:
    raw = field(payload, name, what)
    try:
        return int(str(raw))
    except ValueError:
        raise MarketDataError(f"{what}: field {name!r} is not an integer: {raw!r}") from None


def side_field(payload: Payload, name: str, what: str) -> OrderSide:
    raw = field(payload, name, what)
    if not isinstance(raw, str) or raw not in _SIDES:
        raise MarketDataError(f"{what}: field {name!r} is not BUY or SELL: {raw!r}")
    return OrderSide(raw)


def ms_field(payload: Payload, name: str, what: str) -> int:
    """An epoch-milliseconds field that is a time `datetime` can hold (was: a ValueError or
    OSError, which no caller reads as a malformed answer)."""
    ms = int_field(payload, name, what)
    try:
        utc_from_ms(ms)
    except (OverflowError, OSError, ValueError):
        raise MarketDataError(f"{what}: field {name!r} is not a time: {ms}") from None
    return ms


def as_list(payload: Any, what: str) -> Sequence[Any]:
    if not isinstance(payload, list):
        raise MarketDataError(f"{what}: expected a list, got {type(payload).__name__}")
    return payload


def reduce_only_stated(reduce_only: Any, close_position: Any) -> bool | None:
    """An order's reduceOnly as its answer states it (Binance writes true/false, as JSON or as
    text); a closePosition order only closes, so it reduces; None when neither says (a field
    left out is not a "false")."""
    if flag(close_position):
        return True
    return None if reduce_only is None else flag(reduce_only)


def flag(value: Any) -> bool:
    """A boolean field Binance writes as JSON or as text ("true", "TRUE")."""
    return value is True or str(value).lower() == "true"
