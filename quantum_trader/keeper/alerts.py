"""What an operator must hear about at once: a position the keeper could not protect as
planned. Carried to listeners (the notifier, through ops/telemetry.py) besides the error log
line; a listener never holds up or fails a tick."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from quantum_trader.log import get_logger
from quantum_trader.record import record

log = get_logger("keeper")


@record
class ProtectionAlert:
    """`event` is the error line's event (`exit_rejected_unprotected`,
    `protective_stop_failed`, `stop_stuck_triggering`); `detail` what happened and what the
    keeper does about it."""

    time: datetime
    symbol: str
    event: str
    detail: str


AlertListener = Callable[[ProtectionAlert], None]
# Planner notes that are alerts too: the exchange left a stop of ours triggered but not done.
ALERTED_NOTES = frozenset({"stop_stuck_triggering"})


def tell(listeners: list[AlertListener], alert: ProtectionAlert) -> None:
    """Hand `alert` to every listener; one that raises is logged and the rest still hear it."""
    for listener in listeners:
        try:
            listener(alert)
        except Exception as error:
            log.error("protection_alert_listener_failed", error=repr(error))
