"""Denials that hold: when the balancer denied every candidate of a cycle and none would fit
beside the open positions alone, nothing can get past it whatever the ranking, the risk mode or
the priorities — the book never grows beyond the open positions, and each candidate fails `fit`
against it or is denied earlier (SAFE mode, low priority). Only the reason named first may
differ from a full analysis, never the denial.

An executor cycle uses this to stay "unchanged" while only prices move (cycle_inputs.py).
Re-checking costs little: a candidate refused by the counts (one per symbol, positions, longs,
shorts) or by its correlation with an open position is refused at any price while the same
positions are open and the correlations are the review's; only the others are priced again,
by the checks that read prices (the counts and the correlations pass them by then). The cycle
compares the correlations on their own (cycle_inputs.py `statistics`; a backtest's quiet key
holds the period's), so a re-check with others never makes it repeat.

Each candidate is estimated as the review estimated it, its book depth included (`depths`,
symbol → the notional the sizer stops at: `PortfolioBalancer.depths`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import field
from decimal import Decimal

from quantum_trader.domain import Candidate, MarketView, PortfolioView, Side
from quantum_trader.domain.correlation import CorrelationMatrix, correlation_matrix
from quantum_trader.gates.balancer_output import Exposure
from quantum_trader.gates.balancer_rules import (
    Book,
    Bounds,
    candidate_exposure,
    exposure_at,
    fit,
    fit_counts,
    fit_priced,
    position_exposure,
    refused_throughout,
    signed_correlation,
)
from quantum_trader.gates.settings import BalancerSettings
from quantum_trader.record import record

Held = tuple[tuple[str, Side], ...]


def denials_hold(
    candidates: Sequence[Candidate],
    portfolio: PortfolioView,
    market: MarketView,
    settings: BalancerSettings,
    depths: Mapping[str, float] | None = None,
) -> bool:
    """Whether every candidate is denied at these prices (see the module docstring)."""
    book, matrix = _book(candidates, portfolio, market, settings)
    return _none_fits(candidates, book, matrix, settings, depths or {})


@record
class HeldDenials:
    """A review's candidates, all denied in a way that holds, split by what can undo it."""

    settings: BalancerSettings
    held: Held  # the open positions (symbol, side) the split was made against
    priced: tuple[Candidate, ...]  # denied only as long as prices keep them out
    everything: tuple[Candidate, ...]
    # as the review estimated the candidates (not hashed: a dict)
    depths: Mapping[str, float] = field(default_factory=dict, hash=False)

    @classmethod
    def of(
        cls,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        settings: BalancerSettings,
        *,
        none_fit: bool = False,
        depths: Mapping[str, float] | None = None,
        held_book: Book | None = None,
    ) -> HeldDenials | None:
        """The split, or None when some candidate would fit beside the open positions.
        `none_fit`: the caller knows none does (a review whose every refusal was `fit`'s
        against the open positions alone: `refused_by_fit`). `held_book`: the open positions
        at these prices as the review valued them (`Ranking.held_book`), so they are not
        valued again."""
        depths = depths or {}
        book, matrix = _book(candidates, portfolio, market, settings, held_book)
        if not none_fit and not _none_fits(candidates, book, matrix, settings, depths):
            return None
        priced = tuple(
            c for c in candidates if not _refused_at_any_price(c, book, matrix, settings, depths)
        )
        return cls(settings, _held(portfolio), priced, tuple(candidates), depths)

    def __call__(self, portfolio: PortfolioView, market: MarketView) -> bool:
        return self.hold(portfolio, market)

    def within(
        self,
        accounts: Sequence[PortfolioView],
        low: Mapping[str, Decimal],
        high: Mapping[str, Decimal],
    ) -> bool | None:
        """True where `hold` answers True at every point of a range: the open positions'
        prices anywhere from `low` to `high` (each held symbol's), the equity and the free
        margin anywhere between the least and the most of `accounts` (which hold the same
        positions); None where that is not shown (the caller checks point by point).
        Shown check by check for the priced candidates (`refused_throughout`)."""
        read = {_read(a) for a in accounts}
        if len(read) != 1 or _held(accounts[0]) != self.held:
            return None
        if not self.priced:
            return True
        equities = [float(a.equity_usdt) for a in accounts]
        frees = [float(a.free_usdt) for a in accounts]
        if min(equities) <= 0:
            return None
        s, positions = self.settings, accounts[0].positions.values()
        lows = [exposure_at(p, low[p.symbol], s) for p in positions]
        highs = [exposure_at(p, high[p.symbol], s) for p in positions]
        pairs = list(zip(lows, highs, strict=True))
        least_net = [lo if lo.side.sign > 0 else hi for lo, hi in pairs]
        most_net = [hi if hi.side.sign > 0 else lo for lo, hi in pairs]
        bounds = Bounds(
            Book(min(equities), min(frees), lows),
            Book(max(equities), max(frees), highs),
            Book(0.0, 0.0, least_net).net(),
            Book(0.0, 0.0, most_net).net(),
        )
        for candidate in self.priced:
            depth = self.depths.get(candidate.symbol, math.inf)
            least = candidate_exposure(candidate, bounds.low.equity_usdt, s, depth)
            most = candidate_exposure(candidate, bounds.high.equity_usdt, s, depth)
            if not refused_throughout(bounds, least, most, s):
                return None
        return True

    def hold(self, portfolio: PortfolioView, market: MarketView) -> bool:
        """Whether every candidate is still denied with this account at these prices (with
        the review's correlations, while the same positions are open)."""
        if _held(portfolio) != self.held:
            return denials_hold(self.everything, portfolio, market, self.settings, self.depths)
        if not self.priced:
            return True
        settings = self.settings
        book = _held_book(portfolio, market, settings)
        equity, depths = book.equity_usdt, self.depths
        return all(
            fit_priced(book, _exposure(c, equity, settings, depths), settings) is not None
            for c in self.priced
        )


def _book(
    candidates: Sequence[Candidate],
    portfolio: PortfolioView,
    market: MarketView,
    settings: BalancerSettings,
    held_book: Book | None = None,
) -> tuple[Book, CorrelationMatrix]:
    """The open positions at these prices (`held_book` where the caller has them), and the
    matrix the analysis would use."""
    book = _held_book(portfolio, market, settings) if held_book is None else held_book
    symbols = [h.symbol for h in book.holdings] + [c.symbol for c in candidates]
    matrix = market.correlations or correlation_matrix(
        market.returns, symbols, settings.correlation_lookback_bars
    )
    return book, matrix


def _held_book(portfolio: PortfolioView, market: MarketView, settings: BalancerSettings) -> Book:
    """The open positions at these prices."""
    positions = portfolio.positions.values()
    held = (position_exposure(p, market, settings) for p in positions)
    return Book(float(portfolio.equity_usdt), float(portfolio.free_usdt), held)


def _exposure(
    candidate: Candidate, equity: float, settings: BalancerSettings, depths: Mapping[str, float]
) -> Exposure:
    return candidate_exposure(candidate, equity, settings, depths.get(candidate.symbol, math.inf))


def _none_fits(
    candidates: Sequence[Candidate],
    book: Book,
    matrix: CorrelationMatrix,
    settings: BalancerSettings,
    depths: Mapping[str, float],
) -> bool:
    equity = book.equity_usdt
    return all(
        fit(book, _exposure(c, equity, settings, depths), settings, matrix) is not None
        for c in candidates
    )


def _refused_at_any_price(
    candidate: Candidate,
    book: Book,
    matrix: CorrelationMatrix,
    settings: BalancerSettings,
    depths: Mapping[str, float],
) -> bool:
    """Refused by the counts or by correlation with an open position: neither reads a price
    (the candidate's symbol and side are what they compare)."""
    x = _exposure(candidate, book.equity_usdt, settings, depths)
    if fit_counts(book, x, settings) is not None:
        return True
    return any(signed_correlation(matrix, h, x) > settings.max_correlation for h in book.holdings)


def _read(portfolio: PortfolioView) -> tuple[tuple[object, ...], ...]:
    """What of the open positions a priced check reads but their prices, in their order."""
    return tuple(
        (p.symbol, p.side, p.quantity, p.risk_usdt, p.leverage)
        for p in portfolio.positions.values()
    )


def _held(portfolio: PortfolioView) -> Held:
    return tuple((symbol, p.side) for symbol, p in portfolio.positions.items())
