"""What an executor cycle's entry decisions depend on, so a cycle whose inputs did not change
since the last full one can be recognised and recorded as "unchanged since cycle N".

The candidate filter and the pre-sizing gates (orchestrator, balancer, governor) are pure
functions of: the signals; the market view's per-symbol regimes, ATR, funding, hourly
z-scores, the global regime, the correlations (or the returns when there are none) and the
prices of open positions; the whole portfolio view (equity, margins, positions, day start,
peak, losing streak and hourly PnL as of now, symbol statistics); the governor's state as of
now; the symbols the keeper blocks; the health status; and time, which they read only through
timers: a symbol's block (`block_reason`), a governor trip's end and the UTC day.
`CycleInputs` holds exactly those, so equal inputs give equal verdicts. A candidate's own price
is not read before sizing, and a cycle that approved anything never counts as a base (its
sizing and orders read prices).

The account part is narrowed by what the base cycle consulted: when every candidate was denied
by gates that declare what of the account they read (`account_inputs`), the account counts only
through those declarations and the set of open positions; otherwise the whole portfolio view and
the open positions' prices count, and a price move that changes the marked equity makes the
cycle run. The orchestrator declares thresholds it compares the account with. The balancer
declares only after it denied every candidate and none would fit beside the open positions
alone; it declares just that (`PortfolioBalancer.denials_hold`), re-checked at each cycle's
prices. While it holds nothing gets past the balancer, so the cycle would deny the same
candidates at the same gates, though a full run might name another of the balancer's limits
first, or other figures: a skipped cycle's audit is the base's verdicts in the base's words.

A gate also says whether its declaration reads prices (`account_inputs_priced`, True when it
does not say): the orchestrator's reads the account only; the balancer's does unless every
candidate is refused at any price. A backtest repeats a step only after checking a priced
declaration at that step's prices (replay_quiet.py).

The governor's state is compared as a whole (every field but `updated_at`), so any state it
gains later is covered without a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from quantum_trader.domain import MarketView, PortfolioView, Signal
from quantum_trader.gates.governor import GovernorState
from quantum_trader.portfolio.performance import block_reason
from quantum_trader.record import record

AccountInputs = Callable[[PortfolioView, MarketView], object]


@record
class Observed:
    """One cycle's observations, from which its inputs are read field by field."""

    signals: list[Signal]
    market: MarketView
    portfolio: PortfolioView
    governor: GovernorState
    blocked: Mapping[str, str]
    health: str
    now: datetime
    declared: Sequence[AccountInputs] | None


# Each input and how it is read, cheapest and most often changed first: a comparison with the
# base stops at the first difference, and most cycles that run differ in the signals, the
# hourly fields or the account.
_READERS: tuple[tuple[str, Callable[[Observed], object]], ...] = (
    ("signals", lambda o: tuple(o.signals)),
    ("day", lambda o: o.now.date()),
    ("health", lambda o: o.health),
    ("blocked", lambda o: dict(o.blocked)),
    ("global_regime", lambda o: o.market.global_regime),
    ("per_symbol", lambda o: _per_symbol(o.market)),
    ("account", lambda o: _account(o.portfolio, o.market, o.declared)),
    ("governor", lambda o: o.governor.expire(o.now).standing),
    ("stats", lambda o: dict(o.portfolio.symbol_stats)),  # the ledger's dict, changed in place
    ("blocks", lambda o: tuple(block_reason(s, o.now) for s in o.portfolio.symbol_stats.values())),
    ("statistics", lambda o: _statistics(o.market)),
)


_MARKET_READERS = frozenset({"signals", "global_regime", "per_symbol", "statistics"})
# The other readers with their places in `CycleInputs.values`, picked once: the backtest's
# quiet checks compare them at most of its steps.
_UNMARKET_READERS: tuple[tuple[int, Callable[[Observed], object]], ...] = tuple(
    (index, read) for index, (name, read) in enumerate(_READERS) if name not in _MARKET_READERS
)


@record
class CycleInputs:
    """Everything the candidate filter and the gates consulted read, as of one cycle."""

    values: tuple[object, ...]  # in the order of _READERS

    @classmethod
    def of(cls, observed: Observed) -> CycleInputs:
        return cls(tuple(read(observed) for _, read in _READERS))

    def same_as(self, observed: Observed) -> bool:
        """Whether `observed` gives these inputs; reads only up to the first difference."""
        return all(
            value == read(observed) for value, (_, read) in zip(self.values, _READERS, strict=True)
        )

    def same_but_market_as(self, observed: Observed) -> bool:
        """`same_as` for the inputs not read from the market view's slow fields (signals,
        regimes, ATR, funding, z-scores, the global regime, the correlations): for a caller
        that knows those equal (the backtest's quiet steps: `MarketModel.quiet_key`)."""
        values = self.values
        # A loop, not all() of a generator: the backtest's quiet checks ask at most steps.
        for index, read in _UNMARKET_READERS:  # noqa: SIM110 - see above
            if values[index] != read(observed):
                return False
        return True


def _per_symbol(market: MarketView) -> tuple[Mapping[str, object], ...]:
    return (market.regimes, market.atr_pct, market.funding_rate_8h, market.return_zscore)


def _account(
    portfolio: PortfolioView, market: MarketView, declared: Sequence[AccountInputs] | None
) -> object:
    positions = portfolio.positions
    if declared is None:
        return portfolio, {symbol: market.prices.get(symbol) for symbol in positions}
    return frozenset(positions), tuple(inputs(portfolio, market) for inputs in declared)


def _statistics(market: MarketView) -> tuple[object, ...]:
    """The correlations by value (the gates use them when present), else the returns."""
    matrix = market.correlations
    if matrix is not None:
        return (matrix.symbols, matrix.values.tobytes())
    return tuple((symbol, r.tobytes()) for symbol, r in market.returns.items())
