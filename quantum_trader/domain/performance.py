"""Per-symbol track record (SPEC §7), as the gates and the sizer read it."""

from __future__ import annotations

from dataclasses import field
from datetime import datetime

from quantum_trader.record import record


@record
class SymbolStats:
    """Closed-trade statistics of one symbol. `streak` > 0 counts wins in a row, < 0 losses."""

    symbol: str
    trades: int = 0
    wins: int = 0
    losses: int = 0
    pnl_usdt: float = 0.0
    total_r: float = 0.0
    streak: int = 0
    last_20_r: tuple[float, ...] = field(default_factory=tuple)
    disabled_until: datetime | None = None
    blacklisted: bool = False
    r_trades: int = 0  # trades with a known R (in total_r and last_20_r)
    held_until: datetime | None = None  # after a FILL_OFF_PLAN close (portfolio/performance.py)

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    @property
    def average_r(self) -> float:
        """Mean R of the trades whose R is known (0.0 with none)."""
        return self.total_r / self.r_trades if self.r_trades else 0.0

    @property
    def losing_streak(self) -> int:
        return -self.streak if self.streak < 0 else 0
