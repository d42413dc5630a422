"""A closed trade booked short of some fees, as the keeper remembers it until they are read and
the trade is amended (keeper/fees.py): its key in the repository and its figures as booked."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.record import record


@record
class TradeRef:
    """A closed trade booked without some fees — of orders of ours whose fills were unread at
    its close, or of a growth by hand whose trades were (keeper/added_unread.py) —, to amend
    once they are read (keeper/fees.py).

    The repository knows it by (`symbol`, `entry_order_id`, `closed_at`); `fees_usdt` are its
    fees as booked (a stored trade with other fees was amended already), `risk_usdt` its
    initial risk, its R's denominator (0: unknown, the trade has no R).
    """

    symbol: str
    entry_order_id: str
    closed_at: datetime
    fees_usdt: Decimal
    risk_usdt: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "entry_order_id": self.entry_order_id,
            "closed_at": self.closed_at.isoformat(),
            "fees_usdt": str(self.fees_usdt),
            "risk_usdt": str(self.risk_usdt),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TradeRef:
        return cls(
            str(raw["symbol"]),
            str(raw["entry_order_id"]),
            datetime.fromisoformat(raw["closed_at"]),
            finite(raw["fees_usdt"]),
            finite(raw["risk_usdt"]),
        )


def finite(raw: Any) -> Decimal:
    """A saved amount: a finite number (ValueError otherwise: keeper/fees_saved.py)."""
    value = Decimal(str(raw))
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {raw!r}")
    return value
