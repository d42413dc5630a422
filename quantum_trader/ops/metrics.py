"""The daemon's Prometheus metrics (prometheus-client), in a registry of its own per runtime.

Names and units are the contract the Grafana dashboard (deploy/grafana/) reads:

- `qt_cycle_duration_seconds` (histogram): one executor cycle, wall time.
- `qt_decisions_total{gate,reason,approved}`: every gate verdict.
- `qt_orders_total{kind,outcome}`: orders sent (outcome filled/accepted/rejected/unknown).
- `qt_fills_total{side}`: fills booked. `qt_trades_closed_total{reason}`: round trips closed.
- `qt_errors_total{error,where}`: errors by class: exchange calls, loop steps, notifications.
- `qt_exchange_requests_total{operation}`: calls to the exchange adapter;
  `qt_exchange_used_weight_1m`: Binance's own `X-MBX-USED-WEIGHT-1M` from the last answer.
- `qt_streams`, `qt_stream_up{stream}`, `qt_stream_last_message_age_seconds{stream}`: the
  websocket streams; `qt_streams` 0 means none (`exchange.use_streams = false`, or paper mode).
- `qt_equity_usdt`, `qt_open_positions`, `qt_health`, `qt_trading_state` (state sets);
  `qt_operator_paused`: 1 while `quantum-trader pause` (or `close-all`) holds new entries.
- `qt_loop_lag_seconds{loop}` (histogram), `qt_loop_lag_max_seconds{loop}`,
  `qt_loop_interval_seconds{loop}`, `qt_loop_overruns_total{loop}`: how late each loop step
  started after the tick it was due at, in seconds of the loop's clock (simulated seconds in
  a replay, so comparable with its interval). A lag above one interval is a missed tick.
- `qt_notifications_total{channel,outcome}`: sent, failed (after every retry), dropped.
- `qt_status_connections`: the status server's open client connections;
  `qt_status_connections_closed_total{reason}`: those it closed, `cap` (one beyond
  `server.max_connections`) or `timeout` (no complete request head in time).
- `process_*`: the process collector (resident memory, CPU seconds, open files).

Labelled series whose values are known at start (ops/known_labels.py: gates and their
reasons, order kinds and outcomes, fill sides, exit reasons, the exchange port's errors; the
loops, notification channels and exchange operations their owners declare) read 0 from the
first scrape, not "No data" until their first event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from quantum_trader.gates.governor import TradingState
from quantum_trader.ops import known_labels as known
from quantum_trader.ops.health import HealthStatus
from quantum_trader.record import record

LAG_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# No `*_created` series: they double /metrics and nothing reads them. (Untyped upstream.)
disable_created_metrics()  # type: ignore[no-untyped-call]


@record
class StreamState:
    """One websocket stream as its owner sees it."""

    name: str
    connected: bool
    last_message_age_s: float | None


class StreamHealth(Protocol):
    """What the owner of the websocket streams reports (the market and user-data streams)."""

    def streams(self) -> Sequence[StreamState]: ...


class NoStreams:
    """REST only (paper mode, or streams turned off): nothing to report (`qt_streams` 0)."""

    def streams(self) -> Sequence[StreamState]:
        return ()


class RequestMeter(Protocol):
    """Told about every call the exchange adapter makes (request weight accounting)."""

    def on_request(self, operation: str, used_weight_1m: int | None) -> None: ...


class Metrics:
    """Every instrument of the daemon; `render()` is the /metrics body."""

    def __init__(self, stream_health: StreamHealth | None = None) -> None:
        self.registry = r = CollectorRegistry()
        self._stream_health: StreamHealth = stream_health or NoStreams()
        self.cycle_duration = Histogram(
            "qt_cycle_duration_seconds", "Executor cycle wall time", buckets=CYCLE_BUCKETS_S,
            registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "qt_decisions", "Gate verdicts", ["gate", "reason", "approved"], registry=r
        )
        self.orders = Counter("qt_orders", "Orders sent", ["kind", "outcome"], registry=r)
        self.fills = Counter("qt_fills", "Fills booked", ["side"], registry=r)
        self.trades_closed = Counter("qt_trades_closed", "Round trips", ["reason"], registry=r)
        self.errors = Counter("qt_errors", "Errors by class", ["error", "where"], registry=r)
        self.requests = Counter(
            "qt_exchange_requests", "Exchange adapter calls", ["operation"], registry=r
        )
        self.used_weight = Gauge(
            "qt_exchange_used_weight_1m", "Binance X-MBX-USED-WEIGHT-1M, last answer", registry=r
        )
        self.stream_count = Gauge("qt_streams", "Websocket streams (0: REST only)", registry=r)
        self.stream_up = Gauge(
            "qt_stream_up", "Stream connected (1) or not", ["stream"], registry=r
        )
        self.stream_age = Gauge(
            "qt_stream_last_message_age_seconds", "Since the stream's last message", ["stream"],
            registry=r,
        )  # fmt: skip
        self.equity = Gauge("qt_equity_usdt", "Account equity, USDT", registry=r)
        self.open_positions = Gauge("qt_open_positions", "Open positions", registry=r)
        self.health = Enum(
            "qt_health", "Health status", states=[s.value for s in HealthStatus], registry=r
        )
        self.trading_state = Enum(
            "qt_trading_state", "Governor state", states=[s.value for s in TradingState],
            registry=r,
        )  # fmt: skip
        self.operator_paused = Gauge(
            "qt_operator_paused", "New entries paused by the operator (1) or not", registry=r
        )
        self.loop_lag = Histogram(
            "qt_loop_lag_seconds", "Step start after its due tick (loop clock seconds)", ["loop"],
            buckets=LAG_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.loop_lag_max = Gauge(
            "qt_loop_lag_max_seconds", "Largest loop lag since start", ["loop"], registry=r
        )
        self.loop_interval = Gauge(
            "qt_loop_interval_seconds", "Loop interval (loop clock seconds)", ["loop"], registry=r
        )
        self.loop_overruns = Counter(
            "qt_loop_overruns", "Steps that ran past their next tick", ["loop"], registry=r
        )
        self.notifications = Counter(
            "qt_notifications", "Notifications", ["channel", "outcome"], registry=r
        )
        self.status_connections = Gauge(
            "qt_status_connections", "Open connections to the status server", registry=r
        )
        self.status_closed = Counter(
            "qt_status_connections_closed", "Status server connections it closed", ["reason"],
            registry=r,
        )  # fmt: skip
        ProcessCollector(registry=r)
        self.max_lag_s: dict[str, float] = {}
        self._show_known_at_zero()

    def _show_known_at_zero(self) -> None:
        """Touch each known combination (`labels()` without `inc()`): exported at 0."""
        for labels in known.verdict_labels():
            self.decisions.labels(*labels)
        for kind in known.ORDER_KINDS:
            for outcome in known.ORDER_OUTCOMES:
                self.orders.labels(kind, outcome)
        for side in known.FILL_SIDES:
            self.fills.labels(side)
        for reason in known.CLOSING_REASONS:
            self.trades_closed.labels(reason)
        for error in known.EXCHANGE_ERRORS:
            self.errors.labels(error, known.EXCHANGE_WHERE)
        for closed in known.STATUS_CLOSED_REASONS:
            self.status_closed.labels(closed)

    def declare_loops(self, intervals_s: Mapping[str, float]) -> None:
        """Show each loop (name → interval in its clock's seconds) before its first step: its
        interval, and no lag or overrun yet."""
        for loop, interval_s in intervals_s.items():
            self.loop_interval.labels(loop).set(interval_s)
            self.loop_lag.labels(loop)
            self.loop_lag_max.labels(loop)
            self.loop_overruns.labels(loop)

    def declare_channel(self, channel: str) -> None:
        """Show a notification channel's outcomes at 0 before its first message."""
        for outcome in known.NOTIFICATION_OUTCOMES:
            self.notifications.labels(channel, outcome)

    def declare_operations(self, operations: Iterable[str]) -> None:
        """Show the exchange adapter's kinds of call at 0 before the first."""
        for operation in operations:
            self.requests.labels(operation)

    def count_open_positions(self, count: Callable[[], int]) -> None:
        """Read the number of open positions at every scrape."""
        self.open_positions.set_function(lambda: float(count()))

    def on_request(self, operation: str, used_weight_1m: int | None) -> None:
        self.requests.labels(operation).inc()
        if used_weight_1m is not None:
            self.used_weight.set(used_weight_1m)

    def on_loop_step(self, loop: str, interval_s: float, lag_s: float) -> None:
        self.loop_interval.labels(loop).set(interval_s)
        self.loop_lag.labels(loop).observe(lag_s)
        if lag_s > self.max_lag_s.get(loop, -1.0):
            self.max_lag_s[loop] = lag_s
            self.loop_lag_max.labels(loop).set(lag_s)

    def on_error(self, error: BaseException | str, where: str) -> None:
        name = error if isinstance(error, str) else type(error).__name__
        self.errors.labels(name, where).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        self._read_streams()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _read_streams(self) -> None:
        states = self._stream_health.streams()
        self.stream_count.set(len(states))
        for state in states:
            self.stream_up.labels(state.name).set(1.0 if state.connected else 0.0)
            age = state.last_message_age_s
            self.stream_age.labels(state.name).set(float("nan") if age is None else age)
