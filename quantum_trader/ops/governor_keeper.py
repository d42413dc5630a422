"""Keeps the safety governor durable and carries out what it decides.

Its state is restored at start and saved after every change, so neither a restart nor kill -9
clears a halt; every change is also kept as an event (state namespace `governor_events`, one
key per event) for the backtest report and `status`. An EMERGENCY_SHUTDOWN flattens every
position and cancels our conditional orders; operator requests (`pause`, `resume`,
`close-all`, `reset-halt`, `lift-blacklist`) filed by the CLI are carried out here, oldest
first, each deleted once done. `close-all` pauses new entries before it flattens, so no cycle
re-enters until `resume`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from quantum_trader.domain import ExitReason, MarketView, PortfolioView
from quantum_trader.gates.governor import (
    Breaker,
    GovernorEvent,
    GovernorEventKind,
    GovernorState,
    SafetyGovernor,
)
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.log import get_logger
from quantum_trader.ops.requests import (
    Request,
    RequestKind,
    RequestWindow,
    done,
    pending_requests,
    take_due,
)
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Clock, Repository
from quantum_trader.storage.saved import read_back

log = get_logger("governor")
STATE_KEY = ("governor", "state")
EVENTS_NAMESPACE = "governor_events"
LIFT_BLACKLIST = RequestKind.LIFT_BLACKLIST.value


async def load_governor(settings: GovernorSettings, repository: Repository) -> SafetyGovernor:
    """The governor as the last run left it: a halt survives restarts and kill -9."""
    saved = (await repository.load_state(STATE_KEY[0])).get(STATE_KEY[1])
    state = read_back(*STATE_KEY, GovernorState.from_dict, saved) if saved else GovernorState()
    if state.trips:
        log.warning("governor_state_restored", **_state_fields(state))
    return SafetyGovernor(settings, state)


class GovernorKeeper:
    def __init__(
        self,
        governor: SafetyGovernor,
        repository: Repository,
        keeper: PositionKeeper,
        ledger: Ledger,
    ) -> None:
        self.governor = governor
        self._repository = repository
        self._keeper = keeper
        self._ledger = ledger
        self._window: RequestWindow | None = None
        self._wall: Clock | None = None

    def accept_requests(self, window: RequestWindow, wall: Clock) -> None:
        """Act on operator requests filed within `window` (wall clock `wall`); until this is
        called every pending request is stale (the backtest never takes any)."""
        self._window, self._wall = window, wall

    async def pause(self, now: datetime, operator: str, why: str) -> None:
        """Stop new entries until `resume`; persisted, so a restart keeps the pause."""
        event = self.governor.pause(now, operator, why)
        if event is None:
            log.info("operator_pause_unchanged", already_since=_iso(self._pause_since()))
        await self._record([event] if event else [])

    async def resume(self, now: datetime, operator: str) -> None:
        """Let new entries through again (other breakers stay in force)."""
        event = self.governor.resume(now, operator)
        if event is None:
            log.info("operator_resume_unchanged", trading_state=self.governor.state.trading_state)
        await self._record([event] if event else [])

    async def reset(self, now: datetime, operator: str) -> None:
        """Clear every halt but a pause (`resume` ends that) and the account's losing streak: a
        person decided to trade again."""
        await self._record([self.governor.reset(now, operator)])
        await self._ledger.reset_losing_streak(now)

    async def reset_operator_halt(self, now: datetime, after: timedelta) -> bool:
        """Reset as an operator would once a halt only an operator can end has lasted `after`
        (the backtest's `backtest.operator_reset_after`); return whether it did."""
        since = self.governor.state.operator_halt_since
        if since is None or now < since + after:
            return False
        await self.reset(now, f"simulated operator (backtest.operator_reset_after={after})")
        return True

    async def observe(
        self, portfolio: PortfolioView, market: MarketView, now: datetime, health: str = "HEALTHY"
    ) -> None:
        """Run the breakers; persist and log any change; flatten on EMERGENCY_SHUTDOWN."""
        events = self.governor.observe(portfolio, market, now, health)
        await self._record(events)
        if self.governor.emergency_shutdown_requested and self._keeper.positions:
            await self.flatten(now, ExitReason.EMERGENCY)

    async def require_operator(self, now: datetime, detail: str) -> None:
        """Halt new entries until `reset-halt` (persisted: a restart does not clear it)."""
        event = self.governor.require_operator(now, detail)
        if event is not None:
            await self._record([event])

    async def flatten(self, now: datetime, reason: ExitReason) -> None:
        """Close every position at market and cancel every conditional order of ours."""
        await self._keeper.close_all(reason, now)

    async def handle_operator_requests(self, now: datetime) -> None:
        """Carry out the due requests oldest first (stale ones are dropped), deleting each
        once done; a request whose action raises stays for the next tick."""
        wall_now = self._wall.now() if self._wall is not None else now
        for request in await take_due(self._repository, self._window, wall_now):
            await self._carry_out(request, now)
            await done(self._repository, request)

    async def pending_requests(self) -> list[Request]:
        """The requests filed and not yet carried out or dropped, oldest first."""
        return [r for r in await pending_requests(self._repository) if isinstance(r, Request)]

    async def _carry_out(self, request: Request, now: datetime) -> None:
        by, key = request.by, request.key
        if key == RequestKind.PAUSE:
            await self.pause(now, by, request.detail or f"paused by {by}")
        elif key == RequestKind.RESUME:
            await self.resume(now, by)
        elif key == RequestKind.CLOSE_ALL:
            log.warning("operator_close_all", requested_at=request.filed_at.isoformat(), by=by)
            await self.pause(now, by, f"close-all by {by}")
            await self.flatten(now, ExitReason.MANUAL)
        elif key == RequestKind.RESET_HALT:
            await self.reset(now, by)
        elif key.startswith(LIFT_BLACKLIST):
            await self._lift_blacklist(key.removeprefix(LIFT_BLACKLIST), by)
        else:
            log.warning("operator_request_unknown", request=key, by=by)

    async def _lift_blacklist(self, symbol: str, by: str) -> None:
        """Lift `symbol`'s blacklist; a symbol not blacklisted now (never, or lifted since
        the request was filed) keeps its statistics, its losing streak included."""
        held = self._ledger.stats.get(symbol)
        if held is None or not held.blacklisted:
            log.info("blacklist_lift_ignored", symbol=symbol, by=by, why="not blacklisted")
            return
        await self._ledger.lift_blacklist(symbol)
        log.warning("blacklist_lifted", symbol=symbol, by=by)

    def _pause_since(self) -> datetime | None:
        held = self.governor.state.pause
        return None if held is None else held.since

    async def _record(self, events: list[GovernorEvent]) -> None:
        if not events:
            return
        state = self.governor.state
        await self._repository.save_state(*STATE_KEY, state.to_dict())
        after = {"trading_state": state.trading_state.value, "state_until": _iso(state.until)}
        for event in events:
            key = f"{event.time.isoformat()} {event.kind} {event.breaker or '-'}"
            if event.breaker is Breaker.OPERATOR_PAUSED:
                log.warning(
                    "operator_paused"
                    if event.kind is GovernorEventKind.TRIPPED
                    else "operator_resumed",
                    by=event.operator,
                    detail=event.detail,
                )
            await self._repository.save_state(EVENTS_NAMESPACE, key, event.to_dict() | after)
            log.warning(
                "governor_event",
                kind=event.kind,
                breaker=event.breaker,
                decision=event.decision,
                until=event.until.isoformat() if event.until else None,
                detail=event.detail,
                operator=event.operator,
                **_state_fields(self.governor.state),
            )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _state_fields(state: GovernorState) -> dict[str, object]:
    return {
        "trading_state": state.trading_state,
        "governor_decision": state.decision,
        "governor_until": _iso(state.until),
    }
