"""The checks of a quiet step (replay_quiet.py) that read prices: the cycle's part at a step's
balance and the positions its tick leaves, and a stretch's, at its two corners (the keeper's
part there too) and over the range of prices its steps show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.app import Core
from quantum_trader.domain import Balance, Order, PortfolioView, Position
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.market.model import MarketModel
from quantum_trader.monitor.stops import with_extremes


class QuietChecks:
    """Whether the cycle, and at a stretch's corners the keeper, would leave the state as
    it is at given prices and balances."""

    def __init__(self, core: Core, model: MarketModel, exchange: PaperExchange) -> None:
        self._core = core
        self._model = model
        self._exchange = exchange

    def priced_prefix(
        self,
        steps: Sequence[datetime],
        steps_ms: Sequence[int],
        marks: Sequence[dict[str, Decimal]],
    ) -> int:
        """How many of `steps` (`steps_ms` in ms) pass the cycle's part of the checks at their
        own balance and prices, from the first on: for a base whose inputs read prices where
        `unmoved_within` did not show them unmoved over the whole stretch."""
        positions = self._core.keeper.positions
        for index, (step, step_ms, at) in enumerate(zip(steps, steps_ms, marks, strict=True)):
            # What each step's tick leaves, as `repeats` books it: new highs and lows.
            positions = {s: with_extremes(p, at[s]) for s, p in positions.items()}
            balance = self._exchange.balance_at(at)
            if not self.cycle_unmoved(balance, step, step_ms, positions):
                return index
        return len(steps)

    def corners(
        self, last: datetime, marks: list[dict[str, Decimal]], listed: Mapping[str, Sequence[Order]]
    ) -> list[tuple[dict[str, Decimal], dict[str, Position]]] | None:
        """The keeper's part of the checks of steps up to `last` at the extremes of `marks`
        (`QuietSteps._stretch`): each of the two corners (the lowest equity: every long at its
        lowest mark, every short at its highest; and the other way round), with the positions
        its tick would leave; None where the check fails at either."""
        keeper = self._core.keeper
        held = keeper.positions
        low, high = {}, {}
        for symbol in held:  # a list each, not generators (hot path)
            seen = [at[symbol] for at in marks]
            low[symbol], high[symbol] = min(seen), max(seen)
        found = []
        for ends in ((low, high), (high, low)):
            corner = {s: ends[0][s] if p.side.sign > 0 else ends[1][s] for s, p in held.items()}
            positions = keeper.steady_at(last, listed, corner)
            if positions is None:
                return None
            found.append((corner, positions))
        return found

    def unmoved_within(
        self,
        last: datetime,
        steps_ms: Sequence[int],
        corners: list[tuple[dict[str, Decimal], dict[str, Position]]],
    ) -> bool:
        """The cycle's part of the checks of the steps `steps_ms` (in ms; the last at `last`)
        at once, for a base whose inputs read prices: the tracker and the governor at the two
        corners, as for a base that reads none, and the cycle's inputs over the range of the
        view's prices the steps show and of the corners' accounts
        (`Executor.would_repeat_within`). False where that is not shown; the steps are then
        checked one by one (`priced_prefix`)."""
        accounts = []
        for corner, positions in corners:
            portfolio = self._account_unmoved(self._exchange.balance_at(corner), last, positions)
            if portfolio is None:
                return False
            accounts.append(portfolio)
        held = self._core.keeper.positions
        shown = [self._model.prices_at(step_ms, held) for step_ms in steps_ms]
        # As the balancer values a position: at the view's price, its entry price without.
        prices = {s: [at.get(s, p.entry_price) for at in shown] for s, p in held.items()}
        low = {s: min(seen) for s, seen in prices.items()}
        high = {s: max(seen) for s, seen in prices.items()}
        return self._core.executor.would_repeat_within(accounts, low, high, last)

    def cycle_unmoved(
        self, balance: Balance, now: datetime, now_ms: int, positions: Mapping[str, Position]
    ) -> bool:
        """Whether the cycle at `now` (`now_ms` in ms), the account at `balance` and the keeper
        holding `positions`, would leave the tracker and the governor as they are and find its
        inputs as the base's."""
        portfolio = self._account_unmoved(balance, now, positions)
        if portfolio is None:
            return False
        executor = self._core.executor
        if executor.repeats_unpriced:
            return executor.would_repeat(portfolio, now)
        return executor.would_repeat(portfolio, now, self._model.state_at(now_ms))

    def _account_unmoved(
        self, balance: Balance, now: datetime, positions: Mapping[str, Position]
    ) -> PortfolioView | None:
        """The portfolio view the cycle at `now` would observe, the account at `balance` and
        the keeper holding `positions`, where observing it leaves the tracker and the
        governor as they are; None otherwise."""
        core = self._core
        portfolio = core.ledger.unchanged_view(balance, positions, now)
        market = core.executor.latest_market
        if portfolio is None or market is None:
            return None
        health = core.executor.health(now)
        if not core.governor.governor.unchanged_by(portfolio, market, now, health):
            return None
        return portfolio
