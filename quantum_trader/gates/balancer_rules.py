"""The portfolio balancer's constraints (SPEC §4.2): holdings → breaches, and whether one more
candidate fits.

Candidates are not sized yet, so each is estimated the way the math sizer will size it: loss at
the stop = `candidate_risk_fraction` × equity; notional = that budget ÷ (ATR% × stop multiple),
capped by `candidate_max_margin_fraction` × equity × `candidate_leverage`, and by `depth_usdt`
where the caller knows it (the notional at which the sizer stops: the book's depth, its expected
slippage reaching `sizing.max_slippage_stop_share` of that stop, or the market's last leverage
bracket's cap; the risk shrinks with it).
Concentrations are
fractions of max(gross exposure, equity), so a first small position is not "100 % of exposure".
A symbol missing from the sector map is in `unknown_sector`. Correlation is signed by the sides: a
long and a short on correlated symbols hedge each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    Candidate,
    MarketView,
    Position,
    ReasonCode,
    Side,
    SymbolStats,
)
from quantum_trader.domain.correlation import CorrelationMatrix
from quantum_trader.gates.balancer_output import Exposure, Severity, Violation
from quantum_trader.gates.settings import BalancerSettings


def sector_of(symbol: str, settings: BalancerSettings) -> str:
    return settings.sectors.get(symbol, settings.unknown_sector)


def position_exposure(
    position: Position, market: MarketView, settings: BalancerSettings
) -> Exposure:
    """An open position valued at the market's last price (entry price if there is none)."""
    return exposure_at(position, market.prices.get(position.symbol, position.entry_price), settings)


def exposure_at(position: Position, price: Decimal, settings: BalancerSettings) -> Exposure:
    """An open position valued at `price`."""
    notional = float(position.quantity * price)
    risk = position.risk_usdt
    return Exposure(
        position.symbol,
        position.side,
        notional,
        float(ZERO if risk < ZERO else risk),  # max(risk, 0) by a comparison (see _clamped)
        notional / position.leverage,
        position.leverage,
        sector_of(position.symbol, settings),
    )


LIMIT_TOLERANCE = 1e-9
MIN_STOP_PCT = 1e-6  # a candidate's likely stop is never nearer (a zero ATR divides nothing)
# Compared per candidate: kept here, not read through their class (domain/enums.py).
_LONG, _SHORT = Side.LONG, Side.SHORT


def candidate_exposure(
    candidate: Candidate,
    equity_usdt: float,
    settings: BalancerSettings,
    depth_usdt: float = math.inf,
) -> Exposure:
    """The sizer's likely order for `candidate` (see the module docstring)."""
    risk = settings.candidate_risk_fraction * equity_usdt
    stop_pct = candidate_stop_pct(candidate, settings)
    leverage = settings.candidate_leverage
    cap = settings.candidate_max_margin_fraction * equity_usdt * leverage
    uncapped = risk / stop_pct
    notional = cap if cap < uncapped else uncapped
    if notional > depth_usdt:
        risk *= depth_usdt / notional
        notional = depth_usdt
    sector = sector_of(candidate.symbol, settings)
    return Exposure(
        candidate.symbol, candidate.side, notional, risk, notional / leverage, leverage, sector
    )


def candidate_stop_pct(candidate: Candidate, settings: BalancerSettings) -> float:
    """The likely stop's distance, a fraction of the price."""
    stop_pct = candidate.atr_pct * settings.candidate_stop_atr_multiple
    return MIN_STOP_PCT if stop_pct < MIN_STOP_PCT else stop_pct


def priority(
    candidate: Candidate,
    market: MarketView,
    stats: SymbolStats | None,
    settings: BalancerSettings,
    cost_pct: float | None = None,
) -> float:
    """confidence×100 + category boost + stability×10 − cost×5 + recent performance×10.

    stability ∈ [0, 1] falls linearly with ATR% to 0 at `stability_max_atr_pct`; cost is the
    round trip in percent of notional plus the funding paid over `expected_hold_h` — from the
    cost model when the caller gives `cost_pct`, else from the settings' flat estimate; recent
    performance is the mean R of the symbol's last trades, clamped to [-1, 1].
    """
    category = settings.categories.get(candidate.symbol, "")
    boost = settings.category_boosts.get(category, 0.0)
    stability = _clamped(1.0 - candidate.atr_pct / settings.stability_max_atr_pct, 0.0, 1.0)
    funding = market.funding_rate_8h.get(candidate.symbol, 0.0) * candidate.side.sign
    if cost_pct is None:
        cost = settings.round_trip_cost_pct + max(funding, 0.0) * settings.expected_hold_h / 8 * 100
    else:
        cost = cost_pct
    recent = 0.0
    if stats is not None and stats.last_20_r:
        recent = _clamped(sum(stats.last_20_r) / len(stats.last_20_r), -1.0, 1.0)
    return candidate.confidence * 100 + boost + stability * 10 - cost * 5 + recent * 10


def _clamped(value: float, low: float, high: float) -> float:
    """min(high, max(low, value)), the same float for every input (NaN and signed zeros
    too), by comparisons: in Python 3.11 a two-value min() or max() parses its keywords at
    every call (≈ 1,400 instructions), and the balancer's estimates run for every candidate
    of every cycle."""
    at_least = value if value > low else low
    return at_least if at_least < high else high


class Book:
    """Holdings the constraints apply to: open positions, then each allowed candidate.

    Its totals are kept as holdings are added (`add`), in the order they are added, so each
    is the float a sum over `holdings` gives: the balancer's constraints read them for every
    candidate they fit, and a sum over a generator of two holdings took ≈ 4,000
    instructions."""

    __slots__ = (
        "_by_sector",
        "_by_symbol",
        "_gross",
        "_holdings",
        "_net",
        "_risk",
        "_sides",
        "equity_usdt",
        "free_margin_usdt",
        "holdings",
    )

    def __init__(
        self, equity_usdt: float, free_margin_usdt: float, holdings: Iterable[Exposure] = ()
    ) -> None:
        self.equity_usdt = equity_usdt
        self.free_margin_usdt = free_margin_usdt
        self._holdings: list[Exposure] = []
        self.holdings: Sequence[Exposure] = self._holdings  # read-only: add with `add`
        # Each total starts as `sum` does, at the integer 0 (the empty book's totals are 0).
        self._gross: float = 0
        self._net: float = 0
        self._risk: float = 0
        self._sides: dict[Side, int] = {}
        self._by_symbol: dict[str, float] = {}
        self._by_sector: dict[str, float] = {}
        for holding in holdings:
            self.add(holding)

    def add(self, holding: Exposure) -> None:
        """One more holding, with the totals moved by it."""
        self._holdings.append(holding)
        notional, side = holding.notional_usdt, holding.side
        self._gross += notional
        self._net += notional * side.sign
        self._risk += holding.risk_usdt
        self._sides[side] = self._sides.get(side, 0) + 1
        self._by_symbol[holding.symbol] = self._by_symbol.get(holding.symbol, 0.0) + notional
        self._by_sector[holding.sector] = self._by_sector.get(holding.sector, 0.0) + notional

    def count(self, side: Side | None = None) -> int:
        return len(self._holdings) if side is None else self._sides.get(side, 0)

    def gross(self) -> float:
        return self._gross

    def net(self) -> float:
        return self._net

    def total_risk(self) -> float:
        return self._risk

    def by_symbol(self) -> Mapping[str, float]:
        """The holdings' notional by symbol, in the order the symbols came."""
        return self._by_symbol

    def by_sector(self) -> Mapping[str, float]:
        """The holdings' notional by sector, in the order the sectors came."""
        return self._by_sector

    def concentration_base(self) -> float:
        gross, equity = self.gross(), self.equity_usdt
        return equity if equity > gross else gross  # max(), by a comparison (see _clamped)


def signed_correlation(matrix: CorrelationMatrix, a: Exposure, b: Exposure) -> float:
    """Correlation of two holdings' PnL: the returns' correlation times both sides' signs."""
    return matrix.get(a.symbol, b.symbol) * a.side.sign * b.side.sign


def breaches(
    book: Book, settings: BalancerSettings, matrix: CorrelationMatrix, skip_pairs: int = 0
) -> list[Violation]:
    """Every constraint the book breaks. A correlated pair among the first `skip_pairs`
    holdings (the open positions, which the balancer cannot change) is only a WARNING."""
    s, eq = settings, book.equity_usdt
    found = _count_breaches(book, s)
    if eq <= 0:
        return [*found, Violation("equity", Severity.CRITICAL, f"equity {eq:.2f} <= 0")]
    if book.total_risk() > s.max_total_risk * eq:
        found.append(_v("max_total_risk", Severity.CRITICAL, book.total_risk() / eq))
    elif book.total_risk() > s.safe_mode_total_risk * eq:
        found.append(_v("safe_mode_total_risk", Severity.WARNING, book.total_risk() / eq))
    base = book.concentration_base()
    for symbol, notional in book.by_symbol().items():
        if _over(notional, s.max_symbol_concentration * base):
            found.append(_v(f"max_symbol_concentration:{symbol}", Severity.HIGH, notional / base))
    for sector, notional in book.by_sector().items():
        if _over(notional, s.max_sector_concentration * base):
            found.append(_v(f"max_sector_concentration:{sector}", Severity.HIGH, notional / base))
    if _over(abs(book.net()), s.max_net_exposure * eq):
        found.append(_v("max_net_exposure", Severity.HIGH, abs(book.net()) / eq))
    if book.gross() > s.max_leverage * eq:
        found.append(_v("max_leverage", Severity.CRITICAL, book.gross() / eq))
    found.extend(_correlation_breaches(book, s, matrix, skip_pairs))
    return found


def _v(constraint: str, severity: Severity, value: float) -> Violation:
    return Violation(constraint, severity, f"{constraint} at {value:.4f}")


def _count_breaches(book: Book, s: BalancerSettings) -> list[Violation]:
    found = []
    if book.count() > s.max_positions:
        found.append(Violation("max_positions", Severity.CRITICAL, f"{book.count()} positions"))
    for side, limit in ((Side.LONG, s.max_longs), (Side.SHORT, s.max_shorts)):
        if book.count(side) > limit:
            found.append(Violation(f"max_{side.lower()}s", Severity.HIGH, f"{book.count(side)}"))
    if len(book.by_symbol()) != book.count():  # a symbol held twice
        found.append(Violation("one_position_per_symbol", Severity.CRITICAL, "duplicate symbol"))
    for h in book.holdings:
        if h.leverage > s.max_leverage:
            found.append(Violation("max_leverage", Severity.HIGH, f"{h.symbol} {h.leverage}x"))
    return found


def _correlation_breaches(
    book: Book, s: BalancerSettings, matrix: CorrelationMatrix, skip_pairs: int
) -> list[Violation]:
    found = []
    held = book.holdings
    for j in range(len(held)):
        for i in range(j):
            severity = Severity.WARNING if j < skip_pairs else Severity.HIGH
            corr = signed_correlation(matrix, held[i], held[j])
            if corr > s.max_correlation:
                name = f"max_correlation:{held[i].symbol}~{held[j].symbol}"
                found.append(_v(name, severity, corr))
    return found


Failure = tuple[ReasonCode, str] | None


def fit_counts(book: Book, x: Exposure, s: BalancerSettings) -> Failure:
    # The symbols held are `by_symbol`'s keys: a lookup, not a generator over the holdings
    # (asked for every candidate of every analysis and of every repeated cycle's check).
    if x.symbol in book.by_symbol():
        return ReasonCode.POSITION_ALREADY_OPEN, "one position per symbol"
    if book.count() + 1 > s.max_positions:
        return ReasonCode.MAX_POSITIONS_REACHED, f"{book.count()} of {s.max_positions}"
    if x.side is _LONG:
        if book.count(_LONG) + 1 > s.max_longs:
            return ReasonCode.MAX_LONGS, f"{book.count(_LONG)} longs"
    elif book.count(_SHORT) + 1 > s.max_shorts:
        return ReasonCode.MAX_SHORTS, f"{book.count(_SHORT)} shorts"
    return None


def _fit_money(book: Book, x: Exposure, s: BalancerSettings) -> Failure:
    eq = book.equity_usdt
    risk = book.total_risk() + x.risk_usdt
    if risk > s.max_total_risk * eq:
        return ReasonCode.TOTAL_RISK_EXCEEDED, f"total risk after {risk / eq:.4f}"
    if x.margin_usdt > book.free_margin_usdt:
        return ReasonCode.INSUFFICIENT_MARGIN, f"margin {x.margin_usdt:.2f} > free"
    if x.leverage > s.max_leverage or book.gross() + x.notional_usdt > s.max_leverage * eq:
        return ReasonCode.LEVERAGE_TOO_HIGH, "leverage limit"
    return None


def _over(value: float, limit: float) -> bool:
    """`value` above `limit` by more than float noise: the limits are inclusive, and with the
    default settings a full-size order sits exactly on the symbol limit (10 % × 3x = 30 %)."""
    return value > limit * (1 + LIMIT_TOLERANCE)


def _fit_concentration(book: Book, x: Exposure, s: BalancerSettings) -> Failure:
    grown, equity = book.gross() + x.notional_usdt, book.equity_usdt
    base = equity if equity > grown else grown  # max(), by a comparison (see _clamped)
    if _over(x.notional_usdt, s.max_symbol_concentration * base):
        return ReasonCode.SYMBOL_OVERCONCENTRATED, f"{x.notional_usdt / base:.4f} of exposure"
    sector = book.by_sector().get(x.sector, 0.0) + x.notional_usdt
    if _over(sector, s.max_sector_concentration * base):
        return ReasonCode.SECTOR_OVEREXPOSED, f"{x.sector} at {sector / base:.4f}"
    net = abs(book.net() + x.notional_usdt * x.side.sign)
    if _over(net, s.max_net_exposure * book.equity_usdt):
        return ReasonCode.NET_EXPOSURE_EXCEEDED, f"net {net / book.equity_usdt:.4f}"
    return None


def fit_priced(book: Book, x: Exposure, s: BalancerSettings) -> Failure:
    """The checks of `fit` that read prices (the money and the concentrations)."""
    return _fit_money(book, x, s) or _fit_concentration(book, x, s)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The open positions over a range of prices and accounts, as `refused_throughout` reads
    them: each position at its lowest price with the least equity and free margin (`low`), at
    its highest with the most (`high`), and the least and most net exposure (longs at their
    lowest, shorts at their highest; the other way round). The holdings in the same order."""

    low: Book
    high: Book
    net_low: float
    net_high: float


def refused_throughout(b: Bounds, low: Exposure, high: Exposure, s: BalancerSettings) -> bool:
    """Whether `fit_priced` refuses a candidate at every point of `b`, the candidate being
    `low` at the least equity and `high` at the most (its figures grow with the equity): one
    of its checks refuses at every point. Each side of each comparison grows with every
    figure it reads (the limits are positive; float rounding keeps the order), so each check
    is made with the refusing side at its least and the other at its most. Kept beside
    `_fit_money` and `_fit_concentration`, which it follows check by check."""
    lo, hi = b.low, b.high
    most = hi.equity_usdt
    if lo.total_risk() + low.risk_usdt > s.max_total_risk * most:
        return True
    if low.margin_usdt > hi.free_margin_usdt:
        return True
    if low.leverage > s.max_leverage or lo.gross() + low.notional_usdt > s.max_leverage * most:
        return True
    base = max(hi.gross() + high.notional_usdt, most)
    if _over(low.notional_usdt, s.max_symbol_concentration * base):
        return True
    sector = lo.by_sector().get(low.sector, 0.0) + low.notional_usdt
    if _over(sector, s.max_sector_concentration * base):
        return True
    sign = low.side.sign
    least = b.net_low + (low if sign > 0 else high).notional_usdt * sign
    greatest = b.net_high + (high if sign > 0 else low).notional_usdt * sign
    limit = s.max_net_exposure * most
    return _over(least, limit) or _over(-greatest, limit)


def fit(book: Book, x: Exposure, s: BalancerSettings, matrix: CorrelationMatrix) -> Failure:
    for check in (fit_counts, _fit_money, _fit_concentration):
        failure = check(book, x, s)
        if failure is not None:
            return failure
    for h in book.holdings:
        corr = signed_correlation(matrix, h, x)
        if corr > s.max_correlation:
            return ReasonCode.HIGH_CORRELATION, f"{corr:.3f} with {h.symbol}"
    return None
