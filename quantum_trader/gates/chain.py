"""The approval chain: orchestrator policy → portfolio balancer → safety governor → (sizing) →
risk guard. The first denial stops a candidate; every verdict, allow or deny, is returned so
the caller can persist and log it.

Gates are pure: each is a function of (candidates, portfolio view, market view, now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, cast, runtime_checkable

from quantum_trader.domain import (
    Candidate,
    ExitMode,
    GateName,
    MarketView,
    PortfolioView,
    SizedOrder,
    TradePlan,
    Verdict,
)
from quantum_trader.gates.risk_guard import RiskGuard
from quantum_trader.record import record


@runtime_checkable
class CandidateGate(Protocol):
    """Judges each candidate on its own."""

    @property
    def name(self) -> GateName: ...

    def review(
        self, candidate: Candidate, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> Verdict: ...


@runtime_checkable
class BatchGate(Protocol):
    """Judges all of a cycle's candidates at once (the balancer ranks them)."""

    @property
    def name(self) -> GateName: ...

    def review_all(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
    ) -> list[Verdict]:
        """One verdict per candidate, in the candidates' order."""
        ...


class OrderGate(Protocol):
    """Judges the concrete order the sizer proposes (the risk guard)."""

    @property
    def name(self) -> GateName: ...

    def review_order(
        self, order: SizedOrder, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> Verdict: ...


@record
class Approved:
    candidate: Candidate
    plan: TradePlan


@record
class ChainResult:
    approved: list[Approved]
    verdicts: list[Verdict] = field(default_factory=list)


@record
class ApprovalChain:
    """Pre-sizing gates in order, then the order gates run on each sized order."""

    gates: Sequence[CandidateGate | BatchGate]
    order_gates: Sequence[OrderGate]
    # Whether each gate judges the batch; decided once (a runtime Protocol check is slow).
    _batch: tuple[bool, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_batch", tuple(isinstance(g, BatchGate) for g in self.gates))

    def approve(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
    ) -> ChainResult:
        alive = list(candidates)
        plans = {c.symbol: TradePlan() for c in alive}
        verdicts: list[Verdict] = []
        for gate, judges_batch in zip(self.gates, self._batch, strict=True):
            if not alive:
                break
            if judges_batch:
                results = cast(BatchGate, gate).review_all(alive, portfolio, market, now)
            else:
                one = cast(CandidateGate, gate)
                results = [one.review(c, portfolio, market, now) for c in alive]
            verdicts.extend(results)
            alive = [c for c, v in zip(alive, results, strict=True) if v.approved]
            for verdict in results:
                if verdict.approved:
                    plans[verdict.symbol] = _adjust(plans[verdict.symbol], verdict)
        return ChainResult([Approved(c, plans[c.symbol]) for c in alive], verdicts)

    def check_order(
        self, order: SizedOrder, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> list[Verdict]:
        """Verdicts of the order gates up to and including the first denial."""
        verdicts = []
        for gate in self.order_gates:
            verdict = gate.review_order(order, portfolio, market, now)
            verdicts.append(verdict)
            if not verdict.approved:
                break
        return verdicts

    def risk_cap_usdt(self, portfolio: PortfolioView) -> Decimal | None:
        """The tightest per-trade cap on risk at the stop the order gates hold `portfolio` to
        (the risk guard's), None without one: the keeper checks an entry's fill against it."""
        caps = [g.risk_cap_usdt(portfolio) for g in self.order_gates if isinstance(g, RiskGuard)]
        return min(caps, default=None)


def _adjust(plan: TradePlan, verdict: Verdict) -> TradePlan:
    exit_mode: ExitMode = verdict.exit_mode or plan.exit_mode
    # By position (size factor, exit mode, take-profit multiple): by keyword, the call builds a
    # dict (≈ 3,000 instructions; every approving verdict of every gate adjusts a plan).
    return TradePlan(
        plan.size_factor * verdict.size_factor,
        exit_mode,
        verdict.tp_r_multiple or plan.tp_r_multiple,
    )
