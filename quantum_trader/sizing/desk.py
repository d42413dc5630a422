"""The sizing desk: approved candidate → multipliers (one visible place) → the configured
method → SizedOrder. It also keeps what sizing learns durable: the lifecycle stages and the RL
agent's Q-table, updated from each closed trade.

The RL agent's decision for an entry is kept (repository state `rl_pending`) by the entry's
client order id before the keeper sends it (`on_entry_sending`, a keeper entry listener), so
the trade that entry opens is learnt from however and whenever it closes: within the entry
(a fill past its target), at a later tick (an answer lost, or NEW), after a restart. A
decision whose entry opened nothing is dropped when the keeper knows it (`on_entry_void`: at
once, or at the tick that settles an entry whose outcome was unknown); the oldest beyond
`RL_PENDING_MAX` are dropped.

At start-up, and after a stored trade is amended, the recent R the performance multiplier
reads is taken from the stored trades (was: empty after every restart, so a losing streak was
forgotten; an amendment's new R never reached it), and at start-up a trade a stop cut off
from its listeners (stored, its decision still kept) is learnt from."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from quantum_trader.domain import (
    ClosedTrade,
    GateName,
    MarketView,
    PortfolioView,
    ReasonCode,
    SizedOrder,
    SymbolStats,
    Verdict,
)
from quantum_trader.domain.correlation import correlation_matrix
from quantum_trader.gates.chain import Approved
from quantum_trader.log import get_logger
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ports import Repository, StateWrite, Writes
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.lifecycle import (
    LifecycleBook,
    LifecycleRecord,
    Stage,
    stage_factor,
    stage_room_usdt,
)
from quantum_trader.sizing.methods import MethodSizer, make_sizer
from quantum_trader.sizing.multipliers import compose_multipliers
from quantum_trader.sizing.paper_book import PaperBook
from quantum_trader.sizing.rl import ACTION_BY_KEY, QAgent, RLAction, decision_of
from quantum_trader.sizing.settings import SizingSettings
from quantum_trader.storage.saved import read_back

log = get_logger("sizing")
LIFECYCLE_STATE = ("sizing", "lifecycle")
PAPER_BOOK_STATE = ("sizing", "paper_book")
RL_STATE = ("sizing", "rl_q_table")
RL_PENDING = "rl_pending"
# Far more than the positions a book holds at once (each holds one decision until it closes),
# so only the decisions of entries that opened nothing, rare, reach it.
RL_PENDING_MAX = 200
RECENT_R = 20  # trades of known R the performance multiplier reads


@dataclass(slots=True)
class SizingDesk:
    settings: SizingSettings
    costs: CostModel
    repository: Repository
    lifecycle: LifecycleBook
    agent: QAgent | None
    rng: random.Random
    monitor: MonitorSettings
    paper: PaperBook
    recent_r: list[float] = field(default_factory=list)

    @classmethod
    async def load(
        cls,
        settings: SizingSettings,
        costs: CostModel,
        repository: Repository,
        monitor: MonitorSettings,
    ) -> SizingDesk:
        saved = await repository.load_state(LIFECYCLE_STATE[0])
        lifecycle = read_back(
            *LIFECYCLE_STATE, LifecycleBook.from_dict, saved.get(LIFECYCLE_STATE[1], {})
        )
        paper = read_back(
            *PAPER_BOOK_STATE, PaperBook.from_dict, saved.get(PAPER_BOOK_STATE[1], {})
        )
        agent = None
        if settings.method == "rl":
            agent = read_back(
                *RL_STATE, partial(QAgent.from_dict, settings.rl), saved.get(RL_STATE[1], {})
            )
        rng = random.Random(settings.rl.seed)  # noqa: S311 - exploration, not secrets
        desk = cls(settings, costs, repository, lifecycle, agent, rng, monitor, paper)
        latest = await desk._read_recent_r()
        pending = await repository.load_state(RL_PENDING) if agent is not None else {}
        for trade in latest:  # stored, its listeners never told (a stop in between)
            if trade.entry_order_id in pending:
                await desk._learn(trade)
        return desk

    def size(
        self, approved: Approved, portfolio: PortfolioView, market: MarketView
    ) -> tuple[SizedOrder | Verdict, dict[str, float]]:
        """Size one approved candidate; also return each multiplier for the decision's log line."""
        candidate = approved.candidate
        rules = market.rules.get(candidate.symbol)
        if rules is None:
            return Verdict.deny(GateName.SIZER, candidate.symbol, ReasonCode.UNKNOWN_SYMBOL), {}
        breakdown = compose_multipliers(
            candidate,
            approved.plan,
            portfolio,
            self.settings.multipliers,
            recent_r=self.recent_r,
            correlations=self._correlations(candidate.symbol, portfolio, market),
            stage_factor=self._stage_factor(candidate.symbol, portfolio),
        )
        sizer = make_sizer(self.settings, self.costs, self.agent, self.rng)
        if isinstance(sizer, MethodSizer):
            sizer = sizer.with_returns(dict(market.returns))
        funding = market.funding_rate_8h.get(candidate.symbol, 0.0)
        sized = sizer.size(candidate, breakdown.apply(approved.plan), portfolio, rules, funding)
        if isinstance(sized, SizedOrder):
            capped = self._stage_cap(sized, portfolio)
            if capped is not None:
                return capped, breakdown.log_fields()
        return sized, breakdown.log_fields()

    def _stage_cap(self, order: SizedOrder, portfolio: PortfolioView) -> Verdict | None:
        """Deny an order that would take its lifecycle stage past the stage's total cap."""
        if not self.settings.lifecycle.enabled or self.in_paper_stage(order.symbol):
            return None
        stage = self.lifecycle.stage(order.symbol)
        used: dict[Stage, Decimal] = {}
        for position in portfolio.positions.values():
            held = self.lifecycle.stage(position.symbol)
            used[held] = used.get(held, Decimal(0)) + position.notional_usdt / position.leverage
        room = stage_room_usdt(stage, used, portfolio.equity_usdt, self.settings.lifecycle)
        if order.margin_usdt <= room:
            return None
        detail = f"{stage} margin room {room:.2f} < {order.margin_usdt:.2f}"
        return Verdict.deny(GateName.SIZER, order.symbol, ReasonCode.STAGE_CAP_REACHED, detail)

    async def on_entry_sending(
        self, sized: SizedOrder, client_order_id: str, now: datetime
    ) -> None:
        """Keep the RL decision `sized` carries by its entry's client order id (see the module
        doc), then drop the oldest kept beyond `RL_PENDING_MAX`."""
        decision = decision_of(sized)
        if self.agent is None or decision is None:
            return
        payload = {
            "state": decision.state,
            "action": decision.action.key,
            "sent_at": now.isoformat(),
        }
        await self.repository.save_state(RL_PENDING, client_order_id, payload)
        kept = await self.repository.load_state(RL_PENDING)
        if len(kept) > RL_PENDING_MAX:
            oldest = sorted(kept, key=lambda key: (str(kept[key].get("sent_at", "")), key))
            dropped = [(RL_PENDING, key) for key in oldest[: len(kept) - RL_PENDING_MAX]]
            await self.repository.write(Writes(state_deleted=dropped))
            log.warning("rl_pending_dropped", count=len(dropped), kept=RL_PENDING_MAX)

    async def _read_recent_r(self) -> list[ClosedTrade]:
        """Take the recent R from the stored trades; return the latest trades read."""
        latest = await _latest_of_known_r(self.repository, RECENT_R)
        self.recent_r = [t.r_multiple for t in latest if t.r_multiple is not None][-RECENT_R:]
        return latest

    async def on_trade_amended(self, trade: ClosedTrade) -> None:
        """A stored trade amended (its fees read later: keeper/fees.py): the recent R is read
        anew. The RL agent learnt from the trade once, at its close, and keeps that."""
        await self._read_recent_r()

    async def on_entry_void(self, client_order_id: str) -> None:
        """The entry opened nothing: its decision has no trade to learn from."""
        if self.agent is not None:
            await self.repository.delete_state(RL_PENDING, client_order_id)

    async def on_trade_closed(
        self, trade: ClosedTrade, symbol_stats: Mapping[str, SymbolStats]
    ) -> None:
        """Learn from a closed trade: recent R, the RL agent, the symbol's lifecycle stage."""
        if trade.r_multiple is not None:  # an unknown R says nothing of recent performance
            self.recent_r = [*self.recent_r, trade.r_multiple][-RECENT_R:]
        await self._learn(trade)
        if self.settings.lifecycle.enabled:
            stats = symbol_stats.get(trade.symbol)
            if stats is not None:
                record = LifecycleRecord.from_stats(stats)
                self.lifecycle = self.lifecycle.advance(
                    trade.symbol, record, self.settings.lifecycle
                )
                await self.repository.save_state(*LIFECYCLE_STATE, self.lifecycle.to_dict())

    async def _learn(self, trade: ClosedTrade) -> None:
        if self.agent is None:
            return
        pending: dict[str, Any] = (await self.repository.load_state(RL_PENDING)).get(
            trade.entry_order_id, {}
        )
        action = _action(pending.get("action"))
        if action is None:
            return
        reward = trade.r_multiple
        learnt: list[StateWrite] = []
        if reward is not None:  # an unknown R is no reward to learn from
            self.agent.learn(str(pending["state"]), action, reward)
            learnt.append((*RL_STATE, self.agent.to_dict()))
        # One write: a stop leaves the decision kept and the Q-table without it, or neither.
        done = [(RL_PENDING, trade.entry_order_id)]
        await self.repository.write(Writes(state_deleted=done, state=learnt))
        log.info(
            "rl_learned" if reward is not None else "rl_not_learned",
            symbol=trade.symbol,
            entry_order_id=trade.entry_order_id,
            reward_r=None if reward is None else round(reward, 4),
        )

    def in_paper_stage(self, symbol: str) -> bool:
        """Lifecycle PAPER: the symbol trades only in the paper book, with no capital."""
        return self.settings.lifecycle.enabled and self.lifecycle.stage(symbol) is Stage.PAPER

    async def open_paper(self, order: SizedOrder, now: datetime) -> None:
        position = self.paper.open(order, f"paper-{order.symbol}-{now.isoformat()}", now)
        await self.repository.save_state(*PAPER_BOOK_STATE, self.paper.to_dict())
        log.info(
            "paper_position_opened",
            symbol=order.symbol,
            side=position.side,
            entry_price=str(position.entry_price),
            stop_price=str(position.stop_price),
        )

    async def mark_paper(self, prices: Mapping[str, Decimal], now: datetime) -> None:
        """Manage the paper book's positions; promote symbols whose paper record earns it."""
        if not self.paper.positions:
            return
        taker = self.costs.fee_rate(is_maker=False)
        cost = 2 * (taker + self.costs.slippage_rate(0.0, 0.0))
        for result in self.paper.mark(prices, now, self.monitor, cost):
            before = self.lifecycle.stage(result.symbol)
            record = self.paper.record(result.symbol)
            self.lifecycle = self.lifecycle.advance(result.symbol, record, self.settings.lifecycle)
            log.info(
                "paper_trade_closed",
                symbol=result.symbol,
                r_multiple=round(result.r_multiple, 3),
                exit_reason=result.reason,
                paper_trades=record.trades,
                stage_before=before,
                stage=self.lifecycle.stage(result.symbol),
            )
            await self.repository.save_state(*LIFECYCLE_STATE, self.lifecycle.to_dict())
        await self.repository.save_state(*PAPER_BOOK_STATE, self.paper.to_dict())

    def _stage_factor(self, symbol: str, portfolio: PortfolioView) -> float:
        if not self.settings.lifecycle.enabled or self.in_paper_stage(symbol):
            return 1.0  # a PAPER symbol's paper-book trade is sized as if it were real
        stats = portfolio.symbol_stats.get(symbol)
        record = LifecycleRecord.from_stats(stats) if stats else LifecycleRecord(0, 0.0, 0.0)
        return stage_factor(self.lifecycle.stage(symbol), record, self.settings.lifecycle)

    @staticmethod
    def _correlations(
        symbol: str, portfolio: PortfolioView, market: MarketView
    ) -> dict[str, float]:
        held = [s for s in portfolio.positions if s != symbol]
        if not held:
            return {}
        matrix = market.correlations or correlation_matrix(market.returns, [symbol, *held])
        return {other: matrix.get(symbol, other) for other in held}


def _action(key: object) -> RLAction | None:
    return ACTION_BY_KEY.get(str(key)) if key else None


async def _latest_of_known_r(repository: Repository, known: int) -> list[ClosedTrade]:
    """The latest stored trades, enough of them to hold `known` of known R (or all)."""
    count = known
    while True:
        latest = await repository.latest_closed_trades(count)
        if len(latest) < count or sum(t.r_multiple is not None for t in latest) >= known:
            return latest
        count *= 2
