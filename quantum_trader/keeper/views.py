"""What the keeper publishes (read by the executor, the governor, status and metrics), what
an entry returns, and what it tells of each entry it sends (`EntryListener`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Protocol

from quantum_trader.domain import Position, SizedOrder, StreamHealth
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


class EntryListener(Protocol):
    """Told of each entry of ours by its client order id: the trade it opens carries that id
    as its `entry_order_id`, however it is booked (in `enter`, a later tick, after a restart).
    The sizing desk keeps its RL decisions so."""

    async def on_entry_sending(
        self, sized: SizedOrder, client_order_id: str, now: datetime
    ) -> None:
        """Before the entry is sent: its fill, and a trade closed at once, may follow within
        the same `enter`."""
        ...

    async def on_entry_void(self, client_order_id: str) -> None:
        """The entry opened nothing: refused, never sent, answered with nothing executed, or
        (its outcome unknown to `enter`) settled so at a later tick. May be told twice."""
        ...
