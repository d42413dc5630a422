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
by gates that declare what of the account they read (`account_inputs`, the orchestrator's), the
account counts only through those declarations and the set of open positions; otherwise the
whole portfolio view and the open positions' prices count, and a price move that changes the
marked equity makes the cycle run. Either way the comparison is exact: the same candidates
reach the same gates with the same inputs, so they are denied at the same place and in the
same words.

The governor's state is compared as a whole (every field but `updated_at`), so any state it
gains later is covered without a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from quantum_trader.domain import GlobalRegime, MarketView, PortfolioView, ReasonCode, Signal
from quantum_trader.gates.governor import GovernorState
from quantum_trader.portfolio.performance import block_reason

AccountInputs = Callable[[PortfolioView], object]


@dataclass(frozen=True, slots=True)
class CycleInputs:
    signals: tuple[Signal, ...]
    per_symbol: tuple[Mapping[str, object], ...]
    global_regime: GlobalRegime
    statistics: tuple[object, ...]
    account: object
    stats: Mapping[str, object]
    blocks: tuple[ReasonCode | None, ...]
    governor: GovernorState
    blocked: Mapping[str, str]
    health: str
    day: date


def cycle_inputs(
    signals: list[Signal],
    market: MarketView,
    portfolio: PortfolioView,
    governor: GovernorState,
    blocked: Mapping[str, str],
    health: str,
    now: datetime,
    declared: Sequence[AccountInputs] | None,
) -> CycleInputs:
    """Everything the candidate filter and the gates consulted read at `now`; `declared`: the
    consulted gates' account declarations, None when one of them declares none."""
    per_symbol = (market.regimes, market.atr_pct, market.funding_rate_8h, market.return_zscore)
    return CycleInputs(
        signals=tuple(signals),
        per_symbol=per_symbol,
        global_regime=market.global_regime,
        statistics=_statistics(market),
        account=_account(portfolio, market, declared),
        stats=dict(portfolio.symbol_stats),  # the ledger's own dict, changed in place
        blocks=tuple(block_reason(s, now) for s in portfolio.symbol_stats.values()),
        governor=replace(governor.expire(now), updated_at=None),
        blocked=dict(blocked),
        health=health,
        day=now.date(),
    )


def _account(
    portfolio: PortfolioView, market: MarketView, declared: Sequence[AccountInputs] | None
) -> object:
    positions = portfolio.positions
    if declared is None:
        return portfolio, {symbol: market.prices.get(symbol) for symbol in positions}
    return frozenset(positions), tuple(inputs(portfolio) for inputs in declared)


def _statistics(market: MarketView) -> tuple[object, ...]:
    """The correlations by value (the gates use them when present), else the returns."""
    matrix = market.correlations
    if matrix is not None:
        return (matrix.symbols, matrix.values.tobytes())
    return tuple((symbol, r.tobytes()) for symbol, r in market.returns.items())
