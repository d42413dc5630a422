"""The executor cycle (SPEC §2): market → governor → signals → approval chain → sizing → risk
guard → execution → record. One call of `run_cycle` is one cycle; the loop is in daemon.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from quantum_trader.cycle_audit import decisions_of, log_signals
from quantum_trader.cycle_inputs import AccountInputs, CycleInputs, Observed
from quantum_trader.domain import (
    Balance,
    Candidate,
    Decision,
    GateName,
    MarketView,
    PortfolioView,
    ReasonCode,
    Regime,
    Signal,
    SizedOrder,
    Verdict,
)
from quantum_trader.errors import OrderRejected, RetryLater
from quantum_trader.gates.chain import ApprovalChain, Approved
from quantum_trader.gates.signal_filter import select_candidates
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.log import bound_context, get_logger
from quantum_trader.market.model import MarketState
from quantum_trader.market.provider import MarketStateProvider
from quantum_trader.ops.governor_keeper import GovernorKeeper
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import EntryMarks, Exchange, Repository
from quantum_trader.record import replace
from quantum_trader.sizing.desk import SizingDesk

log = get_logger("executor")
HealthFn = Callable[[datetime], str]


@dataclass(slots=True)
class CycleSummary:
    cycle_id: str
    signals: int = 0
    candidates: int = 0
    approved: int = 0
    opened: int = 0
    unchanged_since: str | None = None  # the cycle whose verdicts this one would repeat
    decisions: list[Decision] = field(default_factory=list)


@dataclass(slots=True)
class Base:
    """The last full cycle that approved nothing: its id, the account declarations of the
    gates it consulted (None: one declares none) and its inputs."""

    cycle_id: str
    declared: list[AccountInputs] | None
    inputs: CycleInputs
    priced: bool  # its inputs read prices: a price move alone may change them
    # Its declarations that read prices answer for a range of them (`within`).
    ranged: bool = False


class Executor:
    def __init__(
        self,
        market: MarketStateProvider,
        exchange: Exchange,
        repository: Repository,
        keeper: PositionKeeper,
        ledger: Ledger,
        chain: ApprovalChain,
        sizing: SizingDesk,
        governor: GovernorKeeper,
        min_confidence: float,
        stopping: asyncio.Event | None = None,
        health: HealthFn = lambda now: "HEALTHY",
        *,
        skip_unchanged: bool,
        entry_marks: EntryMarks | None = None,
    ) -> None:
        self._market = market
        self._exchange = exchange
        self._repository = repository
        self._keeper = keeper
        self._ledger = ledger
        self._chain = chain
        self._sizing = sizing
        self._governor = governor
        self._min_confidence = min_confidence
        self._stopping = stopping or asyncio.Event()
        self._health = health
        self._cycle_numbers = itertools.count(1)
        self._skip_unchanged = skip_unchanged
        self._entry_marks = entry_marks  # testnet/live: entries sized at the mark (ports.py)
        self._base: Base | None = None
        self._latest: MarketState | None = None  # the last cycle's market

    def health(self, now: datetime) -> str:
        """The health status the cycle reads at `now`."""
        return self._health(now)

    @property
    def latest_market(self) -> MarketView | None:
        """The market view of the last cycle (None before the first)."""
        return self._latest.view if self._latest is not None else None

    def latest_regimes(self) -> Mapping[str, Regime]:
        """Each symbol's regime as of the last cycle (the monitor tightens on a change; the
        keeper asks at every tick)."""
        latest = self._latest
        return latest.view.regimes if latest is not None else {}

    async def run_cycle(self, now: datetime) -> CycleSummary:
        """One cycle. Every verdict reached is recorded, even when a later step raises.

        The market, the portfolio, the governor's breakers and the paper book are observed
        every cycle; the candidate filter and the approval chain run only when one of their
        inputs changed since the last full cycle that approved nothing (cycle_inputs.py).
        Otherwise the cycle is "unchanged since cycle N": nothing is recorded, as its
        verdicts would repeat cycle N's."""
        summary = CycleSummary(f"c{next(self._cycle_numbers)}")
        verdicts: list[Verdict] = []
        signals: list[Signal] = []
        # `sim_time` as the instant: the log writes it as ISO text (log.py), on a line written.
        with bound_context(cycle_id=summary.cycle_id, sim_time=now):
            try:
                market = await self._market.state(now)
                self._latest = market
                portfolio = await self.portfolio(now)
                health = self._health(now)
                await self._governor.observe(portfolio, market.view, now, health)
                await self._sizing.mark_paper(market.view.prices, now)
                base = self._base
                if base is not None and self._unchanged(market, portfolio, health, now, base):
                    summary.unchanged_since, summary.signals = base.cycle_id, len(market.signals)
                    log.debug("cycle_unchanged", since=base.cycle_id)
                    return summary
                self._base = None
                signals = list(market.signals)
                consulted = await self._decide(summary, market, portfolio, now, verdicts)
                if self._skip_unchanged and summary.approved == 0:
                    self._base = self._new_base(
                        summary.cycle_id, consulted, market, portfolio, health, now
                    )
            finally:
                if summary.unchanged_since is None:
                    await self._record(summary, now, verdicts, signals)
                    summary.signals = len(signals)
        return summary

    def _new_base(
        self,
        cycle_id: str,
        consulted: set[GateName],
        market: MarketState,
        portfolio: PortfolioView,
        health: str,
        now: datetime,
    ) -> Base:
        """A full cycle that approved nothing, as later cycles compare themselves with it."""
        declared: list[AccountInputs] | None = []
        priced, ranged = False, True
        for gate in self._chain.gates:
            if gate.name in consulted and declared is not None:
                inputs = getattr(gate, "account_inputs", None)
                declared = [*declared, inputs] if inputs is not None else None
                reads_prices = getattr(gate, "account_inputs_priced", True)
                priced = priced or reads_prices
                ranged = ranged and (not reads_prices or hasattr(inputs, "within"))
        if declared is None:  # the whole account counts, with the open positions' prices
            priced, ranged = bool(portfolio.positions), False
        observed = self._observed(market, portfolio, health, now, declared)
        return Base(cycle_id, declared, CycleInputs.of(observed), priced, ranged)

    @property
    def repeats_unpriced(self) -> bool:
        """Whether the next cycle would repeat a base whose inputs read no price."""
        return self._base is not None and not self._base.priced

    @property
    def base_id(self) -> str | None:
        """The cycle later ones compare themselves with (None: the next runs in full)."""
        return self._base.cycle_id if self._base is not None else None

    def would_repeat(
        self, portfolio: PortfolioView, now: datetime, market: MarketState | None = None
    ) -> bool:
        """Whether a cycle at `now` seeing `portfolio` would repeat the base: with the market as
        the last cycle saw it, but for prices, when the base's inputs read no price; else with
        `market`, the market at `now` (without it: False). For a caller that knows the market's
        slow fields as the base saw them (`MarketModel.quiet_key`): only the rest is compared."""
        base = self._base
        if base is None:
            return False
        seen = market if base.priced else self._latest
        if seen is None:
            return False
        observed = self._observed(seen, portfolio, self._health(now), now, base.declared)
        return base.inputs.same_but_market_as(observed)

    def would_repeat_within(
        self,
        accounts: Sequence[PortfolioView],
        low: Mapping[str, Decimal],
        high: Mapping[str, Decimal],
        now: datetime,
    ) -> bool:
        """`would_repeat` for every account and price of a range at once, for a base whose
        declarations that read prices answer for a range (`within`: the open positions'
        prices from `low` to `high`, the equity between the least and the most of
        `accounts`); the others read the account only and pass on an interval of the equity,
        so they are checked at each of `accounts`. For the same caller as `would_repeat`,
        which also knows the market's slow fields as the base saw them."""
        base, latest = self._base, self._latest
        if base is None or base.declared is None or not base.ranged or latest is None:
            return False
        declared: list[AccountInputs] = []
        for inputs in base.declared:
            within = getattr(inputs, "within", None)
            if within is not None:
                answer = within(accounts, low, high)
                if answer is None:
                    return False
                inputs = _answering(answer)
            declared.append(inputs)
        health = self._health(now)
        return all(
            base.inputs.same_but_market_as(self._observed(latest, a, health, now, declared))
            for a in accounts
        )

    def repeat(self) -> CycleSummary:
        """The next cycle as "unchanged since" the base, observing nothing: only for a caller
        that knows none of the base's inputs changed, as the backtest's quiet steps do
        (replay_quiet.py)."""
        base = self._base
        if base is None:
            raise RuntimeError("repeat: no base")
        # Set, not passed by keyword: a class called with one builds a dict of them
        # (≈ 3,000 instructions), and a year's backtest repeats ≈ 85 % of its cycles so.
        summary = CycleSummary(f"c{next(self._cycle_numbers)}")
        summary.unchanged_since = base.cycle_id
        return summary

    def _unchanged(
        self, market: MarketState, portfolio: PortfolioView, health: str, now: datetime, base: Base
    ) -> bool:
        """Whether this cycle's decision inputs, as far as the base cycle consulted them,
        equal the base's."""
        return base.inputs.same_as(self._observed(market, portfolio, health, now, base.declared))

    def _observed(
        self,
        market: MarketState,
        portfolio: PortfolioView,
        health: str,
        now: datetime,
        declared: list[AccountInputs] | None,
    ) -> Observed:
        blocked = self._keeper.blocked_symbols()
        state = self._governor.governor.state
        return Observed(
            market.signals, market.view, portfolio, state, blocked, health, now, declared
        )

    async def _decide(
        self,
        summary: CycleSummary,
        market: MarketState,
        portfolio: PortfolioView,
        now: datetime,
        verdicts: list[Verdict],
    ) -> set[GateName]:
        """Filter the signals, run the chain and enter what it approves; verdicts go into
        `verdicts` as they are reached. Return the gates the chain consulted."""
        log_signals(market.signals)
        candidates, filtered = select_candidates(
            market, portfolio, self._min_confidence, self._keeper.blocked_symbols()
        )
        verdicts += filtered
        approval = self._chain.approve(candidates, portfolio, market.view, now)
        verdicts += approval.verdicts
        summary.candidates, summary.approved = len(candidates), len(approval.approved)
        await self._enter(approval.approved, portfolio, market.view, now, verdicts)
        return {v.gate for v in approval.verdicts}

    async def _enter(
        self,
        approved: Sequence[Approved],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
        verdicts: list[Verdict],
    ) -> None:
        """Size, check and place each approved candidate in priority order; none once stopping.
        Verdicts go into `verdicts` as they are reached."""
        for candidate in approved:
            if self._stopping.is_set():
                break
            verdicts += await self._size_and_execute(candidate, portfolio, market, now)
            portfolio = await self.portfolio(now)  # the next one sees this one's margin

    async def portfolio(self, now: datetime, balance: Balance | None = None) -> PortfolioView:
        """The portfolio at `now`, on `balance` when the caller has just read it."""
        balance = balance or await self._exchange.fetch_balance()
        return await self._ledger.observe(balance, self._keeper.positions, now)

    async def _size_and_execute(
        self, approved: Approved, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> list[Verdict]:
        with bound_context(symbol=approved.candidate.symbol):
            approved, priced = await self._at_mark(approved, now)
            candidate = approved.candidate
            sized, factors = self._sizing.size(approved, portfolio, market)
            if isinstance(sized, Verdict):
                return [sized]
            detail = " ".join(f"{k}={v:.3f}" for k, v in factors.items())
            detail += priced
            if sized.market_max_quantity is not None:  # the exchange's market maximum bound
                detail += f" capped_at_market_max_qty={sized.market_max_quantity}"
            if sized.slippage_max_quantity is not None:  # the book's depth (cost model) bound
                detail += f" capped_at_slippage_qty={sized.slippage_max_quantity}"
            sized_verdict = Verdict.allow(
                GateName.SIZER,
                candidate.symbol,
                f"qty={sized.quantity} lev={sized.leverage} risk={sized.expected_loss_usdt:.2f} "
                f"{detail} method={sized.method.split('|', 1)[0]}",
            )
            verdicts = [sized_verdict, *self._chain.check_order(sized, portfolio, market, now)]
            if not all(v.approved for v in verdicts):
                return verdicts
            if self._sizing.in_paper_stage(candidate.symbol):
                await self._sizing.open_paper(sized, now)
                reason, detail = ReasonCode.LIFECYCLE_PAPER, "traded in the paper book"
                return [*verdicts, _deny(GateName.EXECUTION, candidate, reason, detail)]
            cap = self._chain.risk_cap_usdt(portfolio)  # the keeper checks the fill against it
            return [*verdicts, await self._execute(sized, candidate, now, cap)]

    async def _at_mark(self, approved: Approved, now: datetime) -> tuple[Approved, str]:
        """`approved` priced at the symbol's mark where the executor has one to read
        (`entry_marks`: testnet/live), and the words the sizer's verdict adds; as it is
        otherwise, and where the mark cannot be read."""
        if self._entry_marks is None:
            return approved, ""
        candidate = approved.candidate
        mark = await self._entry_marks.mark(candidate.symbol, now)
        if mark is None or mark <= 0:
            return approved, f" at_bar_close={candidate.price} (no mark)"
        priced = replace(candidate, price=mark)
        return replace(approved, candidate=priced), f" at_mark={mark} bar_close={candidate.price}"

    async def _execute(
        self, order: SizedOrder, candidate: Candidate, now: datetime, cap: Decimal | None
    ) -> Verdict:
        try:
            result = await self._keeper.enter(order, now, risk_cap_usdt=cap)
        except OrderRejected as error:
            return _deny(GateName.EXECUTION, candidate, error.reason, str(error))
        except RetryLater as error:  # not sent (rate limited, unreachable): a later cycle may
            return _deny(GateName.EXECUTION, candidate, ReasonCode.ORDER_FAILED, str(error))
        if result.position is None:
            reason = ReasonCode.ORDER_UNSETTLED if result.unknown else ReasonCode.ORDER_FAILED
            return _deny(GateName.EXECUTION, candidate, reason, f"no position: {result.detail}")
        return Verdict.allow(GateName.EXECUTION, candidate.symbol, f"opened ({result.detail})")

    async def _record(
        self,
        summary: CycleSummary,
        now: datetime,
        verdicts: Sequence[Verdict],
        signals: Sequence[Signal],
    ) -> None:
        summary.decisions += decisions_of(summary.cycle_id, now, verdicts, signals)
        # Approved first: most verdicts are denials, and a member read costs (domain/enums.py)
        summary.opened = sum(1 for v in verdicts if v.approved and v.gate is GateName.EXECUTION)
        await self._repository.record_decisions(summary.decisions)


def _answering(answer: object) -> AccountInputs:
    """Account inputs that answer `answer` whatever they are shown."""
    return lambda portfolio, market: answer


def _deny(gate: GateName, candidate: Candidate, reason: ReasonCode, detail: str = "") -> Verdict:
    return Verdict.deny(gate, candidate.symbol, reason, detail)
