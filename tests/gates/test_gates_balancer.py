"""Portfolio balancer (SPEC §4.2): each constraint just inside and just outside its limit,
priority ranking, risk modes, output, and the property that allowed sets never break a limit."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from gate_builders import NOW, candidate, market, portfolio, position
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantum_trader.domain import (
    Candidate,
    FloatArray,
    MarketView,
    PortfolioView,
    Position,
    ReasonCode,
    Side,
    SymbolStats,
)
from quantum_trader.domain.correlation import correlation_matrix
from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.balancer_journal import BalancerJournal
from quantum_trader.gates.balancer_output import BalancerOutput, RiskMode, Severity
from quantum_trader.gates.balancer_rules import (
    Book,
    breaches,
    candidate_exposure,
    position_exposure,
)
from quantum_trader.gates.chain import ApprovalChain, BatchGate
from quantum_trader.gates.settings import BalancerSettings

BTC, ETH, SOL, DOGE, INJ = (f"{b}/USDT:USDT" for b in ("BTC", "ETH", "SOL", "DOGE", "INJ"))
UNIVERSE = (BTC, ETH, SOL, DOGE, INJ, "XRP/USDT:USDT", "BNB/USDT:USDT", "BCH/USDT:USDT")
LOOSE = {
    "max_net_exposure": 100.0,
    "max_sector_concentration": 1.0,
    "max_symbol_concentration": 1.0,
    "max_correlation": 1.0,
}


def analyze(
    candidates: Sequence[Candidate],
    account: PortfolioView | None = None,
    view: MarketView | None = None,
    /,
    **overrides: float,
) -> BalancerOutput:
    balancer = PortfolioBalancer(BalancerSettings(**overrides))
    extra = [f"C{i}/USDT:USDT" for i in range(20)]
    return balancer.analyze(
        candidates, account or portfolio(), view or market((*UNIVERSE, *extra)), NOW
    )


def reasons(output: BalancerOutput) -> dict[str, ReasonCode]:
    return {d.symbol: d.reason for d in (*output.allowed, *output.dropped)}


def tiny(n: int, side: Side | None = None) -> list[Position]:
    """`n` small positions on one side, or alternating long/short when no side is given."""
    sides = [side or (Side.LONG if i % 2 else Side.SHORT) for i in range(n)]
    return [position(f"C{i}/USDT:USDT", sides[i], quantity="0.1") for i in range(n)]


def test_it_is_a_batch_gate() -> None:
    assert isinstance(PortfolioBalancer(BalancerSettings()), BatchGate)


def test_candidate_estimate_mirrors_the_sizer() -> None:
    x = candidate_exposure(candidate(BTC), 10_000.0, BalancerSettings())
    assert x.risk_usdt == pytest.approx(200.0)
    assert x.notional_usdt == pytest.approx(3000.0)
    assert x.margin_usdt == pytest.approx(1000.0)


def test_priority_formula() -> None:
    out = analyze([candidate(BTC, confidence=0.7), candidate(INJ, confidence=0.7)])
    scores = {d.symbol: d.priority for d in out.allowed}
    assert scores[BTC] == pytest.approx(70 + 20 + 6 - 0.6)
    assert scores[INJ] == pytest.approx(70 + 0 + 6 - 0.6)
    stats = {INJ: SymbolStats(INJ, trades=2, last_20_r=(2.0, -1.0))}
    view = market(UNIVERSE)
    funded = MarketView(
        view.time, view.prices, view.rules, view.atr_pct, funding_rate_8h={INJ: 0.0001}
    )
    out = analyze([candidate(INJ, confidence=0.7)], portfolio(stats=stats), funded)
    assert out.allowed[0].priority == pytest.approx(70 + 6 - 0.6 - 0.075 + 5)


def test_best_candidates_win_the_last_slot() -> None:
    account = portfolio(positions=tiny(7))
    out = analyze(
        [candidate(INJ, confidence=0.9), candidate(BTC, confidence=0.8)], account, **LOOSE
    )
    assert reasons(out) == {BTC: ReasonCode.APPROVED, INJ: ReasonCode.MAX_POSITIONS_REACHED}
    assert out.allowed[0].priority > out.dropped[0].priority


def test_one_position_per_symbol() -> None:
    account = portfolio(positions=[position(BTC, quantity="1")])
    assert reasons(analyze([candidate(BTC)], account))[BTC] is ReasonCode.POSITION_ALREADY_OPEN
    twice = analyze([candidate(ETH, confidence=0.9), candidate(ETH, confidence=0.5)])
    assert [d.reason for d in twice.dropped] == [ReasonCode.POSITION_ALREADY_OPEN]


def test_max_positions() -> None:
    assert analyze([candidate(BTC)], portfolio(positions=tiny(7)), **LOOSE).allowed
    full = analyze([candidate(BTC)], portfolio(positions=tiny(8)), **LOOSE)
    assert full.dropped[0].reason is ReasonCode.MAX_POSITIONS_REACHED


@pytest.mark.parametrize(
    ("side", "code"), [(Side.LONG, ReasonCode.MAX_LONGS), (Side.SHORT, ReasonCode.MAX_SHORTS)]
)
def test_max_longs_and_shorts(side: Side, code: ReasonCode) -> None:
    assert analyze([candidate(BTC, side)], portfolio(positions=tiny(5, side)), **LOOSE).allowed
    out = analyze([candidate(BTC, side)], portfolio(positions=tiny(6, side)), **LOOSE)
    assert out.dropped[0].reason is code


def test_total_risk() -> None:
    def with_risk(stop: str) -> PortfolioView:
        return portfolio(positions=[position(ETH, quantity="100", entry="100", stop=stop)])

    limits = dict(LOOSE, safe_mode_total_risk=0.15)
    assert analyze([candidate(BTC)], with_risk("87"), **limits).allowed
    out = analyze([candidate(BTC)], with_risk("86.9999"), **limits)
    assert out.dropped[0].reason is ReasonCode.TOTAL_RISK_EXCEEDED


def test_free_margin() -> None:
    assert analyze([candidate(BTC)], portfolio(free="1000")).allowed
    out = analyze([candidate(BTC)], portfolio(free="999.99"))
    assert out.dropped[0].reason is ReasonCode.INSUFFICIENT_MARGIN


def test_symbol_concentration() -> None:
    assert analyze([candidate(BTC)], max_symbol_concentration=0.30).allowed
    out = analyze([candidate(BTC)], max_symbol_concentration=0.2999)
    assert out.dropped[0].reason is ReasonCode.SYMBOL_OVERCONCENTRATED


def test_sector_concentration() -> None:
    ok = portfolio(positions=[position(SOL, quantity="10")])
    assert analyze([candidate(BTC)], ok).allowed
    over = portfolio(positions=[position(SOL, quantity="10.0001")])
    assert analyze([candidate(BTC)], over).dropped[0].reason is ReasonCode.SECTOR_OVEREXPOSED
    assert analyze([candidate(DOGE)], over).allowed


def test_net_exposure() -> None:
    ok = portfolio(positions=[position(DOGE, quantity="50")])
    assert analyze(
        [candidate(INJ)], ok, max_sector_concentration=1.0, max_symbol_concentration=1.0
    ).allowed
    over = portfolio(positions=[position(DOGE, quantity="50.0001")])
    limits = {"max_sector_concentration": 1.0, "max_symbol_concentration": 1.0}
    assert (
        analyze([candidate(INJ)], over, **limits).dropped[0].reason
        is ReasonCode.NET_EXPOSURE_EXCEEDED
    )
    assert analyze([candidate(INJ, Side.SHORT)], over, **limits).allowed


def correlated_returns(noise: float) -> dict[str, FloatArray]:
    rng = np.random.default_rng(11)
    base = rng.normal(0, 0.01, 300)
    return {BTC: base, DOGE: base + rng.normal(0, noise, 300)}


def test_high_correlation_with_an_open_position() -> None:
    returns = correlated_returns(0.005)
    corr = correlation_matrix(returns).get(BTC, DOGE)
    view = market(UNIVERSE, returns=returns)
    account = portfolio(positions=[position(BTC, quantity="10")])
    assert analyze([candidate(DOGE)], account, view, max_correlation=corr + 1e-9).allowed
    out = analyze([candidate(DOGE)], account, view, max_correlation=corr - 1e-9)
    assert out.dropped[0].reason is ReasonCode.HIGH_CORRELATION
    assert analyze(
        [candidate(DOGE, Side.SHORT)], account, view, max_correlation=corr - 1e-9
    ).allowed


def test_critical_violations_put_the_balancer_in_safe_mode() -> None:
    out = analyze([candidate(BTC)], portfolio(positions=tiny(9)), **LOOSE)
    assert out.risk_mode is RiskMode.SAFE
    assert out.violations[0].severity is Severity.CRITICAL
    assert out.dropped[0].reason is ReasonCode.CRITICAL_VIOLATIONS
    assert "BLOCK NEW TRADES until violations resolved" in out.actions_required


def test_safe_mode_thresholds() -> None:
    assert analyze([], portfolio(equity="9700", day_start="10000")).risk_mode is not RiskMode.SAFE
    assert analyze([], portfolio(equity="9699", day_start="10000")).risk_mode is RiskMode.SAFE
    assert analyze([], portfolio(losing_streak=4)).risk_mode is RiskMode.NEUTRAL
    assert analyze([], portfolio(losing_streak=5)).risk_mode is RiskMode.SAFE

    def risk(stop: str) -> PortfolioView:
        return portfolio(positions=[position(ETH, quantity="100", stop=stop)])

    assert analyze([], risk("88"), **LOOSE).risk_mode is RiskMode.NEUTRAL
    assert analyze([], risk("87.99"), **LOOSE).risk_mode is RiskMode.SAFE


def test_aggressive_when_healthy_and_light() -> None:
    assert analyze([]).risk_mode is RiskMode.AGGRESSIVE
    light = portfolio(positions=[position(ETH, quantity="10", stop="50.01")])
    assert analyze([], light).risk_mode is RiskMode.AGGRESSIVE
    moderate = portfolio(positions=[position(ETH, quantity="10", stop="50")])
    assert analyze([], moderate).risk_mode is RiskMode.NEUTRAL


def test_output_is_json() -> None:
    out = analyze(
        [candidate(BTC), candidate(BTC)], portfolio(positions=[position(ETH, quantity="1")])
    )
    data = json.loads(json.dumps(out.to_dict()))
    assert set(data) == {
        "time",
        "risk_mode",
        "portfolio_state",
        "violations",
        "allowed_trades",
        "dropped_trades",
        "recommendations",
        "actions_required",
    }
    assert data["dropped_trades"][0]["reason"] == "POSITION_ALREADY_OPEN"
    assert data["recommendations"][0] == "RISK MODE: AGGRESSIVE"
    assert data["portfolio_state"]["by_sector_usdt"] == {"Layer1": 100.0}


def test_fractions_of_equity_have_no_value_without_equity() -> None:
    """At equity ≤ 0 the risk, net exposure and leverage per equity are shown as unknown
    (null), never as 0 — and the balancer refuses every candidate (SAFE mode)."""
    held = [position(ETH, quantity="1")]
    out = analyze([candidate(BTC)], portfolio(equity="-5", positions=held))
    state = out.state
    assert (state.total_risk, state.net_exposure, state.effective_leverage) == (None, None, None)
    data = json.loads(json.dumps(out.to_dict()))["portfolio_state"]
    assert data["total_risk_pct"] is None
    assert data["net_exposure_pct"] is None
    assert out.risk_mode is RiskMode.SAFE
    assert not out.allowed
    flat = analyze([], portfolio(equity="0")).state
    assert (flat.total_risk, flat.net_exposure, flat.effective_leverage) == (0.0, 0.0, 0.0)


def test_review_all_keeps_the_candidates_order() -> None:
    cands = [candidate(INJ, confidence=0.3), candidate(BTC, confidence=0.9), candidate(BTC)]
    balancer = PortfolioBalancer(BalancerSettings())
    verdicts = balancer.review_all(cands, portfolio(), market(UNIVERSE), NOW)
    assert [v.symbol for v in verdicts] == [INJ, BTC, BTC]
    assert [v.approved for v in verdicts] == [True, True, False]
    result = ApprovalChain([balancer], []).approve(cands, portfolio(), market(UNIVERSE), NOW)
    assert sorted(a.candidate.symbol for a in result.approved) == [BTC, INJ]


def test_the_book_keeps_the_sums_over_its_holdings() -> None:
    """Its totals are kept as holdings are added, each the float the sum over the holdings
    in their order gives (the empty book's are 0, as `sum`'s)."""
    s = BalancerSettings()
    empty = Book(10_000.0, 10_000.0)
    assert (empty.gross(), empty.net(), empty.total_risk(), empty.count()) == (0, 0, 0, 0)
    held = [position(ETH, quantity="1.3"), position(SOL, Side.SHORT, quantity="0.7")]
    book = Book(10_000.0, 9_000.0, (position_exposure(p, market(UNIVERSE), s) for p in held))
    for c in (candidate(BTC), candidate(INJ, Side.SHORT), candidate(DOGE)):
        book.add(candidate_exposure(c, 10_000.0, s))
    h = book.holdings
    assert book.gross() == sum(x.notional_usdt for x in h)
    assert book.net() == sum(x.notional_usdt * x.side.sign for x in h)
    assert book.total_risk() == sum(x.risk_usdt for x in h)
    assert (book.count(), book.count(Side.LONG), book.count(Side.SHORT)) == (5, 3, 2)
    sectors: dict[str, float] = {}
    for x in h:
        sectors[x.sector] = sectors.get(x.sector, 0.0) + x.notional_usdt
    assert list(book.by_sector().items()) == list(sectors.items())
    assert list(book.by_symbol()) == [x.symbol for x in h]


def test_the_journal_makes_the_latest_output_from_its_ranking_when_asked() -> None:
    """The chain's review ranks only; the portfolio state and the advice are made when the
    output is read, and are the full analysis's: the state of the open positions alone,
    not of the candidates let in beside them."""
    cands = [candidate(BTC), candidate(INJ, confidence=0.3), candidate(ETH)]
    account = portfolio(positions=[position(ETH, quantity="1"), position(SOL, Side.SHORT)])
    view = market(UNIVERSE)
    balancer = PortfolioBalancer(BalancerSettings())
    journal = BalancerJournal(balancer)
    assert journal.latest is None
    assert journal.latest_json() is None
    verdicts = journal.review_all(cands, account, view, NOW)
    latest = journal.latest
    assert latest == balancer.analyze(cands, account, view, NOW)
    assert [v.approved for v in verdicts] == [True, True, False]
    assert latest is not None
    assert latest.state.total_positions == 2
    assert latest.recommendations[0].startswith("RISK MODE:")
    assert json.loads(journal.latest_json() or "") == json.loads(json.dumps(latest.to_dict()))


POOL = (*UNIVERSE, "ADA/USDT:USDT", "LINK/USDT:USDT", "AVAX/USDT:USDT", "DOT/USDT:USDT")


def factor_returns(seed: int) -> dict[str, FloatArray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.01, 200)
    return {s: base * rng.uniform(0, 1.5) + rng.normal(0, 0.006, 200) for s in POOL}


held = st.tuples(
    st.sampled_from(POOL), st.sampled_from(Side), st.integers(1, 30), st.integers(1, 5)
)
wanted = st.tuples(
    st.sampled_from(POOL), st.sampled_from(Side), st.floats(0.2, 1.0), st.floats(0.003, 0.06)
)


@settings(max_examples=150, deadline=None)
@given(
    positions=st.lists(held, max_size=8, unique_by=lambda h: h[0]),
    candidates=st.lists(wanted, max_size=20),
    equity=st.integers(2_000, 50_000),
    seed=st.integers(0, 50),
)
def test_no_allowed_set_breaks_a_constraint(
    positions: list[tuple[str, Side, int, int]],
    candidates: list[tuple[str, Side, float, float]],
    equity: int,
    seed: int,
) -> None:
    s = BalancerSettings()
    open_positions = [
        position(sym, side, quantity=str(qty), stop=str(100 - stop * side.sign))
        for sym, side, qty, stop in positions
    ]
    view = market(POOL, returns=factor_returns(seed))
    account = portfolio(equity=str(equity), positions=open_positions)
    matrix = correlation_matrix(view.returns, POOL)
    book = Book(
        float(equity), float(equity), (position_exposure(p, view, s) for p in open_positions)
    )
    assume(
        not [
            v
            for v in breaches(book, s, matrix, len(book.holdings))
            if v.severity is not Severity.WARNING
        ]
    )
    cands = [
        Candidate(
            candidate(sym, side, conf).signal, side, candidate().price, atr, candidate().regime
        )
        for sym, side, conf, atr in candidates
    ]
    out = PortfolioBalancer(s).analyze(cands, account, view, NOW)
    for decision in out.allowed:
        book.add(candidate_exposure(cands[decision.index], float(equity), s))
    after = breaches(book, s, matrix, len(open_positions))
    assert [v for v in after if v.severity is not Severity.WARNING] == []
    assert sum(h.margin_usdt for h in book.holdings[len(open_positions) :]) <= equity
