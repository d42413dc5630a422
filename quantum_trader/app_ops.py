"""The composition root's operations part: metrics, notifications, the status server.

`open_operations` builds them around a runtime that `app.open_runtime` opened, registering
each on the same AsyncExitStack (closed in reverse: the server stops, then the notifier gets
`notify.shutdown_flush_s` to send what is queued, the daemon's last words included).
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from quantum_trader.app import Runtime
from quantum_trader.log import get_logger
from quantum_trader.ops import messages
from quantum_trader.ops.metrics import Metrics, NoStreams, StreamHealth
from quantum_trader.ops.notify import Notifier
from quantum_trader.ops.process import ProcessSampler
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ops.server import StatusServer
from quantum_trader.ops.snapshot import RuntimeView
from quantum_trader.ops.telemetry import Telemetry

log = get_logger("daemon")
# After the replay ends, operator requests are still read, at most this often (real seconds).
IDLE_REQUEST_INTERVAL_S = 1.0


@dataclass(slots=True)
class Operations:
    telemetry: Telemetry
    notifier: Notifier
    sampler: ProcessSampler
    warnings: RepeatedWarnings
    url: str | None
    idle_checked_at: float = field(default=float("-inf"))

    @property
    def replay_finished(self) -> bool:
        return self.telemetry.replay_finished

    def idle_request_check_due(self) -> bool:
        """Whether an idle daemon (replay over) should read operator requests now."""
        now_s = time.monotonic()
        if now_s - self.idle_checked_at < IDLE_REQUEST_INTERVAL_S:
            return False
        self.idle_checked_at = now_s
        return True


async def open_operations(
    runtime: Runtime,
    metrics: Metrics,
    stack: AsyncExitStack,
    streams: StreamHealth | None = None,
) -> Operations:
    """Notifier, telemetry and (when enabled) the status server, on `stack`."""
    s = runtime.settings
    warnings = RepeatedWarnings(log, s.log.repeat_summary_interval_s)
    notifier = Notifier(s.notify, metrics, warnings)
    await notifier.start()
    stack.push_async_callback(notifier.close)
    stack.callback(warnings.close)
    view = RuntimeView(
        runtime,
        s.server.exchange_read_interval_s,
        s.server.maintenance_margin_rate,
        read_wait_s=s.server.exchange_read_wait_s,
    )
    stack.push_async_callback(view.close)
    telemetry = Telemetry(view, metrics, notifier, s.server, streams or NoStreams())
    history = await runtime.repository.latest_equity(s.server.equity_points)
    telemetry.attach((point.time, point.equity_usdt) for point in history)
    url = None
    if s.server.enabled:
        server = StatusServer(s.server, telemetry, warnings)
        url = await server.start()
        stack.push_async_callback(server.close)
    if runtime.universe is not None:
        runtime.universe.listeners.append(
            lambda c: notifier.publish(messages.universe_changed(c.time, c.added, c.removed, c.why))
        )
    telemetry.on_started(runtime.clock.now())
    return Operations(telemetry, notifier, ProcessSampler(), warnings, url)
