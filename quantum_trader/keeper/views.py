"""What the keeper publishes (read by the executor, the governor, status and metrics) and what
an entry returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime

from quantum_trader.domain import Position, StreamHealth
from quantum_trader.record import record


@record
class KeeperView:
    """What the keeper publishes: read by the executor, the governor, status and metrics.

    `blocked`: symbols with an order of ours whose outcome is unknown, and why no entry may
    go there until it is settled.
    """

    positions: Mapping[str, Position] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    unsettled: int = 0
    reconciled_at: datetime | None = None
    streams: StreamHealth = field(default_factory=StreamHealth)


@record
class EntryResult:
    """How an entry went: the position, or why there is none (yet)."""

    position: Position | None
    detail: str = ""
    unknown: bool = False
