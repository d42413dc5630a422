"""The sink the daemon's loops call: metrics, the live board behind /status, notifications.

Every hook is synchronous and cheap (counters, bounded deques, an O(1) queue append), except
`on_trade_closed`, which the ledger awaits and which only does the same. Nothing here can
block or fail a trading step: notifications go out from the notifier's own tasks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from quantum_trader.cycle import CycleSummary
from quantum_trader.domain import Balance, ClosedTrade, GateName
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.log import get_logger
from quantum_trader.ops import messages
from quantum_trader.ops.alert_repeats import AlertRepeats
from quantum_trader.ops.health import HealthReport, HealthStatus
from quantum_trader.ops.metrics import Metrics, StreamHealth
from quantum_trader.ops.notify import Notifier
from quantum_trader.ops.operator_view import marks_document
from quantum_trader.ops.settings import ServerSettings
from quantum_trader.ops.snapshot import (
    CycleStatus,
    DecisionStatus,
    RuntimeView,
    StatusSnapshot,
    why_not_active,
)

log = get_logger("telemetry")


class Telemetry:
    """Fed by the loops; read by the status server."""

    def __init__(
        self,
        view: RuntimeView,
        metrics: Metrics,
        notifier: Notifier,
        settings: ServerSettings,
        streams: StreamHealth,
    ) -> None:
        self.view = view
        self.metrics = metrics
        self.notifier = notifier
        self._streams = streams
        self._decisions: deque[DecisionStatus] = deque(maxlen=settings.recent_decisions)
        self._equity: deque[tuple[datetime, Decimal]] = deque(maxlen=settings.equity_points)
        self._last_cycle: CycleStatus | None = None
        self._health: HealthStatus = view.runtime.health.latest.status
        self._trips_seen = {(t.breaker, t.since) for t in view.governor_state().trips}
        self._pause = view.governor_state().pause
        self._alert_repeats = AlertRepeats()
        self.replay_finished = False

    def attach(self, equity_history: Iterable[tuple[datetime, Decimal]]) -> None:
        """Hook into the core (closed trades, protection alerts, open positions) and seed the
        equity curve."""
        self._equity.extend(equity_history)
        self.view.on_trade_closed(self.on_trade_closed)
        self.view.on_protection_alert(self.on_protection_alert)
        self.metrics.count_open_positions(lambda: len(self.view.positions()))
        self._observe_governor(None)

    # -- the loops' hooks ----------------------------------------------------------------------

    def on_loop_step(self, loop: str, interval_s: float, lag_s: float) -> None:
        self.metrics.on_loop_step(loop, interval_s, lag_s)

    def on_loop_overrun(self, loop: str) -> None:
        self.metrics.loop_overruns.labels(loop).inc()

    def on_loop_failure(self, loop: str, error: BaseException) -> None:
        self.metrics.on_error(error, f"loop:{loop}")

    def on_cycle(self, summary: CycleSummary, duration_s: float, now: datetime) -> None:
        """Count the cycle's verdicts, keep the newest, announce entries and new trips."""
        self.metrics.cycle_duration.observe(duration_s)
        self._last_cycle = CycleStatus(
            summary.cycle_id, now, round(duration_s * 1000, 3), summary.signals,
            summary.candidates, summary.approved, summary.opened,
        )  # fmt: skip
        positions = self.view.positions()
        for decision in summary.decisions:
            verdict = decision.verdict
            approved = str(verdict.approved).lower()
            self.metrics.decisions.labels(verdict.gate, verdict.reason, approved).inc()
            self._decisions.append(
                DecisionStatus(
                    decision.time, verdict.symbol, verdict.gate, verdict.approved,
                    verdict.reason, verdict.detail, round(decision.confidence, 4),
                )
            )  # fmt: skip
            opened = verdict.gate is GateName.EXECUTION and verdict.approved
            if opened and verdict.symbol in positions:
                self.notifier.publish(messages.entry(now, positions[verdict.symbol]))
        self._observe_governor(now)

    def on_monitor_tick(self, now: datetime) -> None:
        """Operator requests and the monitor can change the governor's state too."""
        self._observe_governor(now)

    def on_heartbeat(self, report: HealthReport, balance: Balance | None, now: datetime) -> None:
        """Health and equity; a change of health is logged, CRITICAL is announced."""
        self.metrics.health.state(report.status.value)
        if balance is not None:
            self.metrics.equity.set(float(balance.equity_usdt))
            self._equity.append((now, balance.equity_usdt))
            self.view.note_balance(balance)
        if report.status is not self._health:
            log.warning(
                "health_changed",
                previous=self._health.value,
                health=report.status.value,
                problems=list(report.problems),
            )
            if report.status is HealthStatus.CRITICAL:
                self.notifier.publish(messages.health_critical(now, report))
            self._health = report.status

    async def on_trade_closed(self, trade: ClosedTrade) -> None:
        self.metrics.trades_closed.labels(trade.exit_reason).inc()
        self.notifier.publish(messages.exit_(trade))

    def on_protection_alert(self, alert: ProtectionAlert) -> None:
        told = self._alert_repeats.to_tell(alert)  # a refusal met every tick: not every tick
        if told is not None:
            self.notifier.publish(messages.protection_failed(told))

    def on_started(self, now: datetime) -> None:
        s = self.view.runtime.settings
        notice = messages.started(
            now, s.exchange.mode.value, s.market.symbols, len(self.view.positions())
        )
        self.notifier.publish(notice)

    def on_stopped(self, now: datetime, reason: str) -> None:
        self.notifier.publish(messages.stopped(now, reason, len(self.view.positions())))

    def on_replay_finished(self, now: datetime) -> None:
        self.replay_finished = True

    def _observe_governor(self, now: datetime | None) -> None:
        """Announce each breaker trip once (not those restored at start, `now` None), and the
        operator's pause and resume. Only the trips in force are remembered: one that ended
        never comes back (a breaker tripping again is a trip of a later `since`), so the
        daemon's age does not grow what is held."""
        state = self.view.governor_state()
        self.metrics.trading_state.state(state.trading_state.value)
        self.metrics.operator_paused.set(0 if state.pause is None else 1)
        for trip in state.trips:
            key = (trip.breaker, trip.since)
            if key not in self._trips_seen and trip is not state.pause and now is not None:
                self.notifier.publish(messages.governor_trip(now, trip))
        self._trips_seen = {(trip.breaker, trip.since) for trip in state.trips}
        if state.pause != self._pause and now is not None:
            if state.pause is not None:
                self.notifier.publish(messages.paused(now, state.pause))
            else:
                self.notifier.publish(messages.resumed(now, state.trading_state.value))
        self._pause = state.pause

    async def marks_document(self, wall_now: datetime) -> str:
        """The open positions' mark prices for `positions` and `status` (every heartbeat:
        the daemon writes them, MARKS_FILE)."""
        marks = await self.view.marks()
        return marks_document(self.view.runtime.clock.now(), wall_now, marks)

    # -- what the status server reads ----------------------------------------------------------

    async def snapshot(self) -> StatusSnapshot:
        runtime = self.view.runtime
        balance, _ = await self.view.account()
        if balance is not None:
            self.metrics.equity.set(float(balance.equity_usdt))
        positions = await self.view.position_statuses()
        governor = self.view.governor_state()
        health = runtime.health.latest
        return StatusSnapshot(
            time=runtime.clock.now(),
            mode=runtime.settings.exchange.mode.value,
            market_source="replay" if runtime.replay_end is not None else "exchange",
            replay_end=runtime.replay_end,
            replay_finished=self.replay_finished,
            trading_state=governor.trading_state.value,
            governor=governor,
            why=why_not_active(governor, health, self.replay_finished, self.view.blocked()),
            health=health,
            account=balance,
            positions=positions,
            last_cycle=self._last_cycle,
            balancer=self.view.balancer_output(),
            recent_decisions=tuple(self._decisions),
            equity_curve=tuple(self._equity),
            streams=tuple(self._streams.streams()),
            notifications=self.notifier.counts(),
            blocked=self.view.blocked(),
            exchange_read=self.view.exchange_read(),
        )
