"""Portfolio balancer (SPEC §4.2): open positions + all of a cycle's candidates → ranked
allowed and dropped trades, violations, risk mode, recommendations and actions.

The constraints and the candidate estimates live in `balancer_rules`; this module ranks by
priority, lets the best candidates that fit in, and is the BatchGate of the approval chain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from quantum_trader.domain import (
    Candidate,
    GateName,
    MarketRules,
    MarketView,
    PortfolioView,
    Position,
    ReasonCode,
    Side,
    SymbolStats,
    Verdict,
)
from quantum_trader.domain.correlation import CorrelationMatrix, correlation_matrix
from quantum_trader.domain.views import of_equity
from quantum_trader.gates.balancer_output import (
    BalancerOutput,
    Exposure,
    PortfolioState,
    RiskMode,
    Severity,
    TradeDecision,
    Violation,
)
from quantum_trader.gates.balancer_rules import (
    Book,
    Failure,
    breaches,
    candidate_exposure,
    candidate_stop_pct,
    fit,
    position_exposure,
    priority,
)
from quantum_trader.gates.settings import BalancerSettings
from quantum_trader.record import record
from quantum_trader.sizing.brackets import HEADROOM
from quantum_trader.sizing.costs import CostModel


def risk_mode(
    violations: Sequence[Violation],
    book: Book,
    daily_drawdown: float,
    losing_streak: int,
    settings: BalancerSettings,
) -> RiskMode:
    """SAFE on a critical violation, drawdown, losing streak or high total risk; AGGRESSIVE
    when healthy with low risk; NEUTRAL otherwise."""
    s, eq = settings, book.equity_usdt
    risk = book.total_risk() / eq if eq > 0 else 1.0
    if (
        any(v.severity is Severity.CRITICAL for v in violations)
        or daily_drawdown > s.safe_mode_daily_drawdown
        or losing_streak >= s.safe_mode_losing_streak
        or risk > s.safe_mode_total_risk
    ):
        return RiskMode.SAFE
    if (
        not violations
        and risk < s.aggressive_max_total_risk
        and daily_drawdown < s.aggressive_max_daily_drawdown
        and losing_streak <= s.aggressive_max_losing_streak
    ):
        return RiskMode.AGGRESSIVE
    return RiskMode.NEUTRAL


def portfolio_state(book: Book, used_margin_usdt: float, free_margin_usdt: float) -> PortfolioState:
    eq = book.equity_usdt
    return PortfolioState(
        equity_usdt=eq,
        used_margin_usdt=used_margin_usdt,
        free_margin_usdt=free_margin_usdt,
        total_positions=book.count(),
        longs=book.count(Side.LONG),
        shorts=book.count(Side.SHORT),
        gross_exposure_usdt=book.gross(),
        net_exposure_usdt=book.net(),
        total_risk_usdt=book.total_risk(),
        total_risk=of_equity(book.total_risk(), eq),
        net_exposure=of_equity(book.net(), eq),
        effective_leverage=of_equity(book.gross(), eq),
        by_symbol_usdt=dict(book.by_symbol()),
        by_sector_usdt=dict(book.by_sector()),
    )


_ADVICE = {
    "max_positions": "Close weak positions before opening new ones",
    "max_total_risk": "Reduce position sizes or close losing positions",
    "safe_mode_total_risk": "Total risk near its limit: tighten stops",
    "max_symbol_concentration": "High symbol concentration - diversify",
    "max_sector_concentration": "High sector concentration - diversify across sectors",
    "max_net_exposure": "Net exposure high - balance longs and shorts",
    "max_leverage": "Leverage too high - reduce exposure",
    "max_correlation": "Open positions are highly correlated",
}


def advice(
    mode: RiskMode, violations: Sequence[Violation]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(recommendations, actions required) for the output."""
    recommendations = [f"RISK MODE: {mode}"]
    for v in violations:
        text = _ADVICE.get(v.constraint.split(":")[0])
        if text is not None and text not in recommendations:
            recommendations.append(text)
    actions = []
    if any(v.severity is Severity.CRITICAL for v in violations):
        actions.append("BLOCK NEW TRADES until violations resolved")
    elif mode is RiskMode.SAFE:
        actions.append("BLOCK NEW TRADES: SAFE mode")
    actions.extend(
        f"Resolve {v.constraint}: {v.message}"
        for v in violations
        if v.severity is not Severity.WARNING
    )
    return tuple(recommendations), tuple(actions)


def _decide(
    ranked: Iterable[tuple[int, Candidate, float, Exposure]],
    book: Book,
    mode: RiskMode,
    matrix: CorrelationMatrix,
    settings: BalancerSettings,
) -> list[TradeDecision]:
    """Each ranked candidate (index, candidate, priority, its likely order) let in or not."""
    decisions, taken = [], 0
    safe = RiskMode.SAFE  # read once, not per candidate (domain/enums.py)
    for index, cand, score, x in ranked:
        failure: Failure
        if mode is safe:
            failure = ReasonCode.CRITICAL_VIOLATIONS, "SAFE mode blocks new trades"
        elif score < settings.min_priority or taken >= settings.max_new_trades_per_cycle:
            failure = ReasonCode.LOW_PRIORITY, f"priority {score:.2f}"
        else:
            failure = fit(book, x, settings, matrix)
        reason, detail = failure or (ReasonCode.APPROVED, f"priority {score:.2f}")
        decisions.append(
            TradeDecision(
                index,
                cand.symbol,
                cand.side,
                cand.confidence,
                score,
                failure is None,
                reason,
                detail,
            )
        )
        if failure is None:
            book.add(x)
            book.free_margin_usdt -= x.margin_usdt
            taken += 1
    return decisions


@record
class Ranking:
    """What the chain acts on of an analysis: the violations, the risk mode and each candidate
    let in or not (allowed in priority order), with what the rest of the output is made from
    when asked (`output`). Only the JSON file and `status` read the portfolio state and the
    advice, a backtest never: ≈ 70,000 instructions an analysis with two positions open."""

    time: datetime
    equity_usdt: float
    used_margin_usdt: float
    free_margin_usdt: float
    held: tuple[Exposure, ...]  # the open positions as the constraints saw them
    violations: tuple[Violation, ...]
    risk_mode: RiskMode
    allowed: tuple[TradeDecision, ...]
    dropped: tuple[TradeDecision, ...]

    def held_book(self) -> Book:
        """The open positions as the analysis valued them, with its equity and free margin."""
        return Book(self.equity_usdt, self.free_margin_usdt, self.held)

    def output(self) -> BalancerOutput:
        """The whole §4.2 output of this analysis."""
        book = self.held_book()
        recommendations, actions = advice(self.risk_mode, self.violations)
        return BalancerOutput(
            self.time,
            self.risk_mode,
            portfolio_state(book, self.used_margin_usdt, self.free_margin_usdt),
            self.violations,
            self.allowed,
            self.dropped,
            recommendations,
            actions,
        )


@record
class PortfolioBalancer:
    """BatchGate: rank the cycle's candidates and allow the best that fit every constraint.

    With `costs`, a candidate's cost score comes from the same cost model as paper fills and
    sizing (fees, size- and volatility-dependent slippage, funding over the expected hold);
    with `slippage_stop_share` as well (`sizing.max_slippage_stop_share`), a candidate is
    estimated no larger than the sizer will make it where the book's depth stops it
    (`depths`): a large account's candidates were judged, and priced, at orders never sent.
    Nor larger than its market's last leverage bracket's cap allows (sizing/brackets.py).
    """

    settings: BalancerSettings
    costs: CostModel | None = None
    slippage_stop_share: float | None = None

    @property
    def name(self) -> GateName:
        return GateName.BALANCER

    def depths(
        self, candidates: Iterable[Candidate], rules: Mapping[str, MarketRules]
    ) -> dict[str, float]:
        """Each candidate's largest notional as the sizer bounds it: before its expected
        slippage reaches `slippage_stop_share` of its likely stop's distance (with a cost model
        and a share), and at most its market's last leverage bracket's cap less the sizer's
        headroom; infinite where neither bounds it."""
        depths: dict[str, float] = {}
        for c in candidates:
            depth, cap = self._depth(c), _cap(rules.get(c.symbol))
            depths[c.symbol] = cap if cap < depth else depth  # min(), by a comparison
        return depths

    def _depth(self, candidate: Candidate) -> float:
        share = self.slippage_stop_share
        if self.costs is None or share is None:
            return math.inf
        stop_pct = candidate_stop_pct(candidate, self.settings)
        return self.costs.notional_within_slippage(stop_pct * share, candidate.atr_pct)

    def rank_portfolio(
        self,
        positions: Iterable[Position],
        candidates: Sequence[Candidate],
        equity_usdt: float,
        used_margin_usdt: float,
        free_margin_usdt: float,
        market: MarketView,
        now: datetime,
        *,
        daily_drawdown: float = 0.0,
        losing_streak: int = 0,
        symbol_stats: Mapping[str, SymbolStats] | None = None,
        depths: Mapping[str, float] | None = None,
    ) -> Ranking:
        """The §4.2 analysis but for what `Ranking.output` adds; pure. `depths`: the
        candidates' as `depths` gives them, when the caller has them already."""
        s, stats = self.settings, symbol_stats or {}
        held = tuple(position_exposure(p, market, s) for p in positions)
        book = Book(equity_usdt, free_margin_usdt, held)  # `_decide` adds those it lets in
        symbols = [h.symbol for h in held] + [c.symbol for c in candidates]
        matrix = market.correlations or correlation_matrix(
            market.returns, symbols, s.correlation_lookback_bars
        )
        violations = breaches(book, s, matrix, skip_pairs=len(held))
        mode = risk_mode(violations, book, daily_drawdown, losing_streak, s)
        depths = self.depths(candidates, market.rules) if depths is None else depths
        # Each candidate's likely order, made once: the cost score and `fit` read the same.
        scored = []
        for i, c in enumerate(candidates):
            x = candidate_exposure(c, equity_usdt, s, depths.get(c.symbol, math.inf))
            cost_pct = self._cost_pct(c, x, market)
            scored.append((i, c, priority(c, market, stats.get(c.symbol), s, cost_pct), x))
        scored.sort(key=lambda item: (-item[2], item[1].symbol, item[0]))
        decisions = _decide(scored, book, mode, matrix, s)
        return Ranking(
            now,
            equity_usdt,
            used_margin_usdt,
            free_margin_usdt,
            held,
            tuple(violations),
            mode,
            tuple(d for d in decisions if d.allowed),
            tuple(d for d in decisions if not d.allowed),
        )

    def _cost_pct(
        self, candidate: Candidate, estimate: Exposure, market: MarketView
    ) -> float | None:
        """The expected round trip of the sizer's likely order (`estimate`), in percent of
        its notional."""
        if self.costs is None:
            return None
        if estimate.notional_usdt <= 0:
            return None
        funding = market.funding_rate_8h.get(candidate.symbol, 0.0)
        trip = self.costs.round_trip(
            estimate.notional_usdt,
            candidate.atr_pct,
            candidate.side,
            funding,
            self.settings.expected_hold_h,
        )
        return trip.total_usdt / estimate.notional_usdt * 100

    def review_all(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
    ) -> list[Verdict]:
        """One verdict per candidate, in the candidates' order."""
        return verdicts_from(self.rank(candidates, portfolio, market, now), len(candidates))

    def analyze(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
        depths: Mapping[str, float] | None = None,
    ) -> BalancerOutput:
        """The whole §4.2 analysis, fed from the portfolio view (for the JSON file and
        status). Allowed trades come in priority order."""
        return self.rank(candidates, portfolio, market, now, depths).output()

    def rank(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
        depths: Mapping[str, float] | None = None,
    ) -> Ranking:
        """`rank_portfolio` fed from the portfolio view."""
        return self.rank_portfolio(
            portfolio.positions.values(),
            candidates,
            float(portfolio.equity_usdt),
            float(portfolio.used_margin_usdt),
            float(portfolio.free_usdt),
            market,
            now,
            daily_drawdown=portfolio.daily_drawdown,
            losing_streak=portfolio.losing_streak,
            symbol_stats=portfolio.symbol_stats,
            depths=depths,
        )


def _cap(rules: MarketRules | None) -> float:
    """The most the sizer sizes at: the last bracket's cap less its headroom."""
    cap = None if rules is None else rules.notional_cap
    return math.inf if cap is None else float(cap / (1 + HEADROOM))


def refused_by_fit(output: Ranking) -> bool:
    """Whether the analysis allowed nothing and each refusal is `fit`'s against the open
    positions alone: no SAFE mode and no candidate below the priority floor, so each was
    fitted, and with nothing allowed the book never grew beyond the positions."""
    return (
        not output.allowed
        and output.risk_mode is not RiskMode.SAFE
        and all(d.reason is not ReasonCode.LOW_PRIORITY for d in output.dropped)
    )


def verdicts_from(output: Ranking, count: int) -> list[Verdict]:
    """The output's decisions as verdicts, indexed like the candidates."""
    verdicts: list[Verdict | None] = [None] * count
    gate = GateName.BALANCER  # read once, not per decision (domain/enums.py)
    for d in (*output.allowed, *output.dropped):
        if d.allowed:
            verdicts[d.index] = Verdict.allow(gate, d.symbol, d.detail)
        else:
            verdicts[d.index] = Verdict.deny(gate, d.symbol, d.reason, d.detail)
    return [v for v in verdicts if v is not None]
