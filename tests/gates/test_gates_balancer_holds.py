"""Denials that hold: when the balancer denied every candidate and none would fit beside the open
positions alone, it declares that as the one thing of the account its verdicts depend on, so an
executor cycle need not run again while only prices move (cycle_inputs.py). The declaration is
sound: whenever it says the denials hold, a full analysis at those prices allows nothing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
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
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings, SizingSettings

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


def _positions(drawn: list[tuple[str, Side, int, int]]) -> list[Position]:
    return [
        position(sym, side, quantity=str(qty), stop=str(100 - stop * side.sign))
        for sym, side, qty, stop in drawn
    ]


def _candidates(drawn: list[tuple[str, Side, float, float]]) -> list[Candidate]:
    return [
        Candidate(candidate(sym, side, conf).signal, side, Decimal(100), atr, candidate().regime)
        for sym, side, conf, atr in drawn
    ]


price_lists = st.lists(st.integers(40, 250), min_size=len(POOL), max_size=len(POOL))

# A market this thin bounds some candidates by its depth at these accounts' sizes, not others.
THIN = CostModel(CostSettings(small_order_notional_usdt=100, large_order_notional_usdt=500))


def _balancer(s: BalancerSettings, thin: bool) -> PortfolioBalancer:
    """Without a cost model, or with a thin market's and the sizer's slippage share."""
    if not thin:
        return PortfolioBalancer(s)
    return PortfolioBalancer(s, THIN, SizingSettings().max_slippage_stop_share)


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
    thin=st.booleans(),
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
    thin: bool,
) -> None:
    """A review's denials are declared at one set of prices and equity, re-checked at another:
    the quick re-check agrees with the whole one, and where it says they hold, a full analysis
    allows nothing — also where the book's depth bounds candidates (`thin`)."""
    s = BalancerSettings()
    balancer = _balancer(s, thin)
    open_positions, cands = _positions(positions), _candidates(candidates)
    depths = balancer.depths(cands, _view(prices[0], seed).rules)
    before = _account(open_positions, equity[0], free_share, drawdown, streak)
    declared = HeldDenials.of(cands, before, _view(prices[0], seed), s, depths=depths)
    event(f"declared: {declared is not None}")
    # 12,000: the largest notional a candidate is estimated at here without the bound
    event(f"bounded by depth: {any(d < 12_000 for d in depths.values())}")
    # The chain's review declares the same, sparing the fits its analysis already ran.
    journal = BalancerJournal(balancer)
    journal.review_all(cands, before, _view(prices[0], seed), NOW)
    reviewed = journal.account_inputs
    assert (reviewed is None) is (declared is None)
    assert reviewed == declared
    account = _account(open_positions, equity[1], free_share, drawdown, streak)
    view = _view(prices[1], seed)
    holds = denials_hold(cands, account, view, s, depths)
    event(f"denials hold at the new prices: {holds}")
    if declared is not None:
        assert declared.hold(account, view) is holds
    if holds:
        assert balancer.analyze(cands, account, view, NOW).allowed == ()


def _limits(
    total_risk: float, symbol: float, sector: float, net: float, leverage: int, margin: float
) -> BalancerSettings:
    return BalancerSettings(
        max_total_risk=total_risk,
        safe_mode_total_risk=min(0.12, total_risk),
        aggressive_max_total_risk=min(0.05, total_risk),
        max_symbol_concentration=symbol,
        max_sector_concentration=sector,
        max_net_exposure=net,
        max_leverage=leverage,
        candidate_leverage=min(3, leverage),
        candidate_max_margin_fraction=margin,
    )


# Limits each of which is the one binding in some examples.
limits = st.builds(
    _limits,
    st.floats(0.01, 0.5),
    st.floats(0.05, 1),
    st.floats(0.05, 1),
    st.floats(0.1, 3),
    st.integers(1, 10),
    st.floats(0.02, 1),
)


@pytest.mark.parametrize("reach", ["near", "far"])
@settings(max_examples=600, deadline=None)
@given(
    s=limits,
    positions=st.lists(held, min_size=1, max_size=6, unique_by=lambda h: h[0]),
    candidates=st.lists(wanted, min_size=1, max_size=8),
    prices=st.tuples(price_lists, price_lists),
    moves=st.lists(st.integers(-20, 20), min_size=len(POOL), max_size=len(POOL)),
    equity=st.tuples(st.integers(1_000, 40_000), st.integers(1_000, 40_000)),
    equity_move=st.integers(-10, 10),
    free=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    seed=st.integers(0, 30),
    inside=st.lists(st.lists(st.floats(0, 1), min_size=len(POOL) + 2, max_size=len(POOL) + 2)),
    thin=st.booleans(),
)
def test_denials_shown_to_hold_over_a_range_hold_at_every_point_of_it(
    reach: str,
    s: BalancerSettings,
    positions: list[tuple[str, Side, int, int]],
    candidates: list[tuple[str, Side, float, float]],
    prices: tuple[list[int], list[int]],
    moves: list[int],
    equity: tuple[int, int],
    equity_move: int,
    free: tuple[float, float],
    seed: int,
    inside: list[list[float]],
    thin: bool,
) -> None:
    """A backtest checks a stretch of steps at once (replay_quiet_checks.py `unmoved_within`): each
    open position's price anywhere in a range, the equity and the free margin anywhere
    between two accounts'. Declared at one set of prices and account, asked over the range
    from there to another — near (prices up to 20 % away, the equity up to 10 %: ranges
    that end near a limit) or far (any other prices and equity: checks loose on the wrong
    side) —: where `within` says the denials hold over it, the point-by-point re-check says
    so at the other end, at every mix of the ranges' ends, and inside; also where the book's
    depth bounds candidates (`thin`)."""
    open_positions, cands = _positions(positions), _candidates(candidates)
    depths = _balancer(s, thin).depths(cands, _view(prices[0], seed).rules)

    def account(equity: float, free: float) -> PortfolioView:
        return portfolio(equity=f"{equity:.2f}", free=f"{free:.2f}", positions=open_positions)

    if reach == "near":
        other = [p * (100 + m) // 100 for p, m in zip(prices[0], moves, strict=True)]
        equities = (equity[0], equity[0] * (100 + equity_move) / 100)
    else:
        other, equities = prices[1], equity
    views = [_view(prices[0], seed), _view(other, seed)]
    frees = (equities[0] * free[0], equities[1] * free[1])
    declared = HeldDenials.of(cands, account(equities[0], frees[0]), views[0], s, depths=depths)
    if declared is None:
        return
    held = [p.symbol for p in open_positions]
    low = {s: min(v.prices[s] for v in views) for s in held}
    high = {s: max(v.prices[s] for v in views) for s in held}
    ends = [account(e, f) for e, f in zip(equities, frees, strict=True)]
    shown = declared.within(ends, low, high)
    elsewhere = declared.hold(ends[1], views[1])
    event(f"shown over the range: {shown}; hold at the other end: {elsewhere}")
    if not shown:
        return
    assert elsewhere is True
    sides = {p.symbol: p.side.sign for p in open_positions}
    corners = [[end] * len(POOL) for end in (0.0, 1.0)]
    corners += [  # longs at one end, shorts at the other: the least and the most net
        [end if sides.get(symbol, 1) > 0 else 1 - end for symbol in POOL] for end in (0.0, 1.0)
    ]
    mixes = [[*c, e, f] for c in corners for e in (0.0, 1.0) for f in (0.0, 1.0)]
    least, most = min(equities), max(equities)
    fewest, greatest = min(frees), max(frees)
    for share in [*mixes, *inside]:
        moved = {
            symbol: low[symbol] + (high[symbol] - low[symbol]) * Decimal(share[POOL.index(symbol)])
            for symbol in low
        }
        at = account(least + (most - least) * share[-2], fewest + (greatest - fewest) * share[-1])
        assert declared.hold(at, replace(views[0], prices={**views[0].prices, **moved})) is True


# Denied at SOL 100 by one limit, fitting at SOL 90 or 120 (at 100 a hair over the limit):
# the settings, SOL's size, the candidate, the reason, and the far end of a range that stays
# denied and of one that reaches where the candidate fits.
EDGES = {
    "sector": ({}, "10.0001", BTC, ReasonCode.SECTOR_OVEREXPOSED, "120", "90"),
    "net": (
        {"max_net_exposure": 0.4},
        "10.0001",
        DOGE,
        ReasonCode.NET_EXPOSURE_EXCEEDED,
        "120",
        "90",
    ),
    "symbol": (
        {"max_symbol_concentration": 0.26, "max_net_exposure": 5},
        "80",
        DOGE,
        ReasonCode.SYMBOL_OVERCONCENTRATED,
        "90",
        "120",
    ),
}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_a_range_that_reaches_where_a_candidate_fits_is_not_shown_to_hold(edge: str) -> None:
    """One limit at a time: over a range of SOL's price on the denied side of it the denial
    is shown to hold; over one that reaches past it, where the candidate fits, it is not."""
    limits, quantity, symbol, reason, denied, fits = EDGES[edge]
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings(**limits)))
    account = portfolio(positions=[position(SOL, quantity=quantity)])
    (verdict,) = journal.review_all([candidate(symbol)], account, market(UNIVERSE), NOW)
    assert verdict.reason is reason
    declared = journal.account_inputs
    assert isinstance(declared, HeldDenials)
    at = {SOL: Decimal(100)}
    assert declared.within([account], at, at) is True
    assert declared.within([account], *_between("100", denied)) is True
    assert declared.within([account], *_between("100", fits)) is None
    assert declared.hold(account, priced(market(UNIVERSE), SOL=fits)) is False


def _between(a: str, b: str) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    ends = sorted((Decimal(a), Decimal(b)))
    return {SOL: ends[0]}, {SOL: ends[1]}


def test_nothing_is_shown_over_a_range_of_accounts_that_differ_in_their_positions() -> None:
    """`within` answers for accounts holding what the denials were declared with, the same
    sizes in each: accounts that differ (another size, another position) are left to the
    point-by-point check."""
    journal = BalancerJournal(PortfolioBalancer(BalancerSettings()))
    account = portfolio(positions=[position(SOL, quantity="10.0001")])
    journal.review_all([candidate(BTC)], account, market(UNIVERSE), NOW)
    declared = journal.account_inputs
    assert isinstance(declared, HeldDenials)
    prices = {SOL: Decimal(100), DOGE: Decimal(100)}
    assert declared.within([account], prices, prices) is True
    larger = portfolio(positions=[position(SOL, quantity="11")])
    assert declared.within([larger], prices, prices) is True  # more SOL: still over its sector
    assert declared.within([account, larger], prices, prices) is None
    another = portfolio(positions=[position(SOL, quantity="10.0001"), position(DOGE)])
    assert declared.within([another], prices, prices) is None
