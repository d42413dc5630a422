"""Denials that hold: when the balancer denied every candidate and none would fit beside the open
positions alone, it declares that as the one thing of the account its verdicts depend on, so an
executor cycle need not run again while only prices move (cycle_inputs.py). The declaration is
sound: whenever it says the denials hold, a full analysis at those prices allows nothing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
from gate_builders import NOW, candidate, market, portfolio, position
from hypothesis import event, given, settings
from hypothesis import strategies as st

from quantum_trader.domain import (
    Candidate,
    MarketView,
    PortfolioView,
    Position,
    ReasonCode,
    Side,
)
from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.balancer_holds import HeldDenials, denials_hold
from quantum_trader.gates.balancer_journal import BalancerJournal
from quantum_trader.gates.settings import BalancerSettings

BTC, SOL, DOGE = (f"{b}/USDT:USDT" for b in ("BTC", "SOL", "DOGE"))
UNIVERSE = (BTC, SOL, DOGE, "ETH/USDT:USDT", "INJ/USDT:USDT", "XRP/USDT:USDT")


def priced(view: MarketView, **prices: str) -> MarketView:
    moved = {s: Decimal(prices.get(s.split("/")[0], str(p))) for s, p in view.prices.items()}
    return replace(view, prices=moved)


def test_a_sector_denial_holds_until_the_price_lets_the_candidate_fit() -> None:
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings()))
    account = portfolio(positions=[position(SOL, quantity="10.0001")])  # SOL and BTC: Layer1
    view = market(UNIVERSE)
    (verdict,) = journal.review_all([candidate(BTC)], account, view, NOW)
    assert verdict.reason is ReasonCode.SECTOR_OVEREXPOSED
    holds = journal.account_inputs
    assert holds is not None
    assert holds(account, view) is True
    assert holds(account, priced(view, SOL="120")) is True  # more SOL exposure: still over
    cheaper = priced(view, SOL="90")  # SOL's notional shrinks: BTC fits beside it
    assert holds(account, cheaper) is False
    assert journal.review_all([candidate(BTC)], account, cheaper, NOW)[0].approved


def test_nothing_is_declared_when_the_balancer_allowed_a_candidate() -> None:
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings()))
    account = portfolio(positions=[position(SOL, quantity="10.0001")])
    verdicts = journal.review_all([candidate(BTC), candidate(DOGE)], account, market(UNIVERSE), NOW)
    assert [v.approved for v in verdicts] == [False, True]
    assert journal.account_inputs is None


def test_a_safe_mode_denial_is_not_declared_to_hold() -> None:
    """SAFE mode (here the daily drawdown) denies a candidate that would fit; marked equity
    can end it, so the whole account must count."""
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings()))
    account = portfolio(equity="9699", day_start="10000")
    (verdict,) = journal.review_all([candidate(BTC)], account, market(UNIVERSE), NOW)
    assert verdict.reason is ReasonCode.CRITICAL_VIOLATIONS
    assert journal.account_inputs is None


def test_a_later_review_replaces_the_declaration() -> None:
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings()))
    account = portfolio(positions=[position(SOL, quantity="10.0001")])
    journal.review_all([candidate(BTC)], account, market(UNIVERSE), NOW)
    assert journal.account_inputs is not None
    journal.review_all([candidate(DOGE)], account, market(UNIVERSE), NOW)
    assert journal.account_inputs is None


POOL = (*UNIVERSE, "BNB/USDT:USDT", "ADA/USDT:USDT", "LINK/USDT:USDT")
held = st.tuples(
    st.sampled_from(POOL), st.sampled_from(Side), st.integers(1, 40), st.integers(1, 10)
)
wanted = st.tuples(
    st.sampled_from(POOL), st.sampled_from(Side), st.floats(0.2, 1.0), st.floats(0.003, 0.06)
)


def _account(
    positions: list[Position], equity: int, free_share: float, drawdown: float, streak: int
) -> PortfolioView:
    return portfolio(
        equity=str(equity),
        free=str(round(equity * free_share, 2)),
        day_start=str(round(equity * (1 + drawdown), 2)),
        positions=positions,
        losing_streak=streak,
    )


def _view(prices: list[int], seed: int) -> MarketView:
    rng = np.random.default_rng(seed)  # a common factor: some pairs correlate strongly
    factor = rng.normal(0, 0.01, 200)
    returns = {s: factor * rng.uniform(0, 1.5) + rng.normal(0, 0.005, 200) for s in POOL}
    return replace(
        market(POOL, returns=returns),
        prices={s: Decimal(p) for s, p in zip(POOL, prices, strict=True)},
    )


price_lists = st.lists(st.integers(40, 250), min_size=len(POOL), max_size=len(POOL))


@settings(max_examples=300, deadline=None)
@given(
    positions=st.lists(held, max_size=6, unique_by=lambda h: h[0]),
    candidates=st.lists(wanted, min_size=1, max_size=8),
    prices=st.tuples(price_lists, price_lists),
    equity=st.tuples(st.integers(1_000, 40_000), st.integers(1_000, 40_000)),
    free_share=st.floats(0.0, 1.0),
    drawdown=st.floats(0.0, 0.05),
    streak=st.integers(0, 6),
    seed=st.integers(0, 30),
)
def test_whenever_the_denials_hold_a_full_analysis_allows_nothing(
    positions: list[tuple[str, Side, int, int]],
    candidates: list[tuple[str, Side, float, float]],
    prices: tuple[list[int], list[int]],
    equity: tuple[int, int],
    free_share: float,
    drawdown: float,
    streak: int,
    seed: int,
) -> None:
    """A review's denials are declared at one set of prices and equity, re-checked at another:
    the quick re-check agrees with the whole one, and where it says they hold, a full analysis
    allows nothing."""
    s = BalancerSettings()
    open_positions = [
        position(sym, side, quantity=str(qty), stop=str(100 - stop * side.sign))
        for sym, side, qty, stop in positions
    ]
    cands = [
        Candidate(candidate(sym, side, conf).signal, side, Decimal(100), atr, candidate().regime)
        for sym, side, conf, atr in candidates
    ]
    before = _account(open_positions, equity[0], free_share, drawdown, streak)
    declared = HeldDenials.of(cands, before, _view(prices[0], seed), s)
    event(f"declared: {declared is not None}")
    # The chain's review declares the same, sparing the fits its analysis already ran.
    journal = BalancerJournal(PortfolioBalancer(s))
    journal.review_all(cands, before, _view(prices[0], seed), NOW)
    reviewed = journal.account_inputs
    assert (reviewed is None) is (declared is None)
    assert reviewed is None or getattr(reviewed, "__self__", None) == declared
    account = _account(open_positions, equity[1], free_share, drawdown, streak)
    view = _view(prices[1], seed)
    holds = denials_hold(cands, account, view, s)
    event(f"denials hold at the new prices: {holds}")
    if declared is not None:
        assert declared.hold(account, view) is holds
    if holds:
        assert PortfolioBalancer(s).analyze(cands, account, view, NOW).allowed == ()
