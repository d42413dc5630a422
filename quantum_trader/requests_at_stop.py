"""The operator requests still pending when the daemon's loops end: the command that filed
each told the operator the daemon would act on it, so the ordered stop carries them out as a
monitor tick would, within the executor's grace, or says each not done (daemon.py calls this
once, after the loops)."""

from __future__ import annotations

import asyncio
import sqlite3

from quantum_trader.app import Runtime
from quantum_trader.app_ops import Operations
from quantum_trader.errors import QuantumTraderError
from quantum_trader.log import get_logger
from quantum_trader.ops.messages import request_not_done

log = get_logger("daemon")  # the stop's lines, as before they moved here


async def requests_at_stop(runtime: Runtime, ops: Operations, carry_out: bool) -> None:
    """The operator requests pending as the loops end: carried out as a monitor tick would
    (the command that filed them said the daemon would), within the executor's grace; any
    left is said not done, so that no one takes it for done (the next start drops it)."""
    governor = runtime.core.governor
    grace_s = runtime.settings.executor.shutdown_grace_s
    if carry_out:
        try:
            async with asyncio.timeout(grace_s):
                await governor.handle_operator_requests(runtime.clock.now())
        except TimeoutError:
            log.error("operator_requests_cut_at_stop", grace_s=grace_s)
        except QuantumTraderError as error:  # it stays pending: said below
            log.error("operator_request_failed_at_stop", error=str(error))
    try:
        left = await governor.pending_requests()
    except (QuantumTraderError, sqlite3.Error, OSError) as error:  # the write failure's cause
        log.error("operator_requests_unread_at_stop", error=str(error))
        return
    now = runtime.clock.now()
    for request in left:
        at = request.filed_at.isoformat()
        log.error(
            "operator_request_not_done",
            request=request.key,
            by=request.by,
            requested_at=at,
            why="the daemon stopped before carrying it out",
            todo="ask again once a daemon runs (the next start drops this one)",
        )
        ops.notifier.publish(request_not_done(now, request.key, request.by, at))
