"""Keeps the safety governor durable and carries out what it decides.

Its state is restored at start and saved after every change, so neither a restart nor kill -9
clears a halt; every change is also kept as an event (state namespace `governor_events`, one
key per event) for the backtest report and `status`. An EMERGENCY_SHUTDOWN flattens every
position and cancels our conditional orders; operator requests (`close-all`, `reset-halt`)
filed by the CLI are carried out here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from quantum_trader.domain import ExitReason, MarketView, PortfolioView
from quantum_trader.execution.trader import Trader
from quantum_trader.gates.governor import GovernorEvent, GovernorState, SafetyGovernor
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.log import get_logger
from quantum_trader.monitor.protection import OUR_PREFIX
from quantum_trader.ops.requests import take_requests
from quantum_trader.ports import Exchange, Repository

log = get_logger("governor")
STATE_KEY = ("governor", "state")
EVENTS_NAMESPACE = "governor_events"
LIFT_BLACKLIST = "lift_blacklist:"


async def load_governor(settings: GovernorSettings, repository: Repository) -> SafetyGovernor:
    """The governor as the last run left it: a halt survives restarts and kill -9."""
    saved = (await repository.load_state(STATE_KEY[0])).get(STATE_KEY[1])
    state = GovernorState.from_dict(saved) if saved else GovernorState()
    if state.trips:
        log.warning("governor_state_restored", **_state_fields(state))
    return SafetyGovernor(settings, state)


class GovernorKeeper:
    def __init__(
        self,
        governor: SafetyGovernor,
        repository: Repository,
        exchange: Exchange,
        trader: Trader,
    ) -> None:
        self.governor = governor
        self._repository = repository
        self._exchange = exchange
        self._trader = trader

    async def reset(self, now: datetime, operator: str) -> None:
        """Clear every halt and the account's losing streak: a person decided to trade again."""
        await self._record([self.governor.reset(now, operator)])
        await self._trader.ledger.reset_losing_streak(now)

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
        if self.governor.emergency_shutdown_requested and self._trader.ledger.positions:
            await self.flatten(now, ExitReason.EMERGENCY)

    async def flatten(self, now: datetime, reason: ExitReason) -> None:
        """Close every position at market and cancel every conditional order of ours."""
        async with self._trader.lock:
            await self._flatten(now, reason)
        log.warning("flattened", reason=reason)

    async def _flatten(self, now: datetime, reason: ExitReason) -> None:
        for position in list(self._trader.ledger.positions.values()):
            try:
                await self._trader.close_position(position, reason, now)
            except Exception:
                log.exception("flatten_failed", symbol=position.symbol)
        for order in await self._exchange.fetch_open_conditional_orders():
            if order.client_order_id.startswith(OUR_PREFIX):  # never touch orders placed by hand
                await self._trader.cancel_conditional(order.symbol, order.client_order_id, now)

    async def handle_operator_requests(self, now: datetime) -> None:
        requests = await take_requests(self._repository)
        if "close_all" in requests:
            log.warning(
                "operator_close_all", requested_at=requests["close_all"].get("requested_at")
            )
            await self.flatten(now, ExitReason.MANUAL)
        if "reset_halt" in requests:
            await self.reset(now, str(requests["reset_halt"].get("by", "operator")))
        for kind, request in requests.items():
            if kind.startswith(LIFT_BLACKLIST):
                symbol = kind.removeprefix(LIFT_BLACKLIST)
                await self._trader.ledger.lift_blacklist(symbol)
                log.warning("blacklist_lifted", symbol=symbol, by=request.get("by", "operator"))

    async def _record(self, events: list[GovernorEvent]) -> None:
        if not events:
            return
        state = self.governor.state
        await self._repository.save_state(*STATE_KEY, state.to_dict())
        after = {"trading_state": state.trading_state.value, "state_until": _iso(state.until)}
        for event in events:
            key = f"{event.time.isoformat()} {event.kind} {event.breaker or '-'}"
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
