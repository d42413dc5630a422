"""The balancer as the chain runs it, keeping its latest ranking, from which the full analysis
is made for the JSON file and `status` when they ask (SPEC §4.2: the latest output is written
to the data directory)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from quantum_trader.domain import Candidate, GateName, MarketView, PortfolioView, Verdict
from quantum_trader.gates.balancer import PortfolioBalancer, Ranking, refused_by_fit, verdicts_from
from quantum_trader.gates.balancer_holds import HeldDenials
from quantum_trader.gates.balancer_output import BalancerOutput

OUTPUT_FILE = "portfolio_balancer.json"
_NAME = GateName.BALANCER  # read for every verdict: not read through its class (domain/enums.py)


class BalancerJournal:
    """BatchGate: the balancer's verdicts, with its latest output in `latest`."""

    def __init__(self, balancer: PortfolioBalancer) -> None:
        self._balancer = balancer
        self._ranking: Ranking | None = None  # the latest review's
        self._held: HeldDenials | None = None  # the latest review's, when its denials hold

    @property
    def account_inputs(self) -> Callable[[PortfolioView, MarketView], object] | None:
        """What of the account the latest review's verdicts depend on, for an executor cycle
        deciding whether to run again (cycle_inputs.py): when it denied every candidate in a
        way that holds (balancer_holds.py), only whether that still holds at the new prices
        (True until it does not; `HeldDenials.within` answers for a range of prices at once);
        otherwise None: the whole account counts."""
        return self._held

    @property
    def account_inputs_priced(self) -> bool:
        """Whether `account_inputs` reads prices: unless every candidate is refused at any
        price while the same positions are open."""
        return self._held is None or bool(self._held.priced)

    @property
    def name(self) -> GateName:
        return _NAME

    @property
    def latest(self) -> BalancerOutput | None:
        """The latest review's whole output, made when asked (`Ranking.output`)."""
        return None if self._ranking is None else self._ranking.output()

    def review_all(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
    ) -> list[Verdict]:
        balancer = self._balancer
        depths = balancer.depths(candidates, market.rules)
        ranking = self._ranking = balancer.rank(candidates, portfolio, market, now, depths)
        self._held = None
        if not ranking.allowed:
            none_fit = refused_by_fit(ranking)  # `fit` ran on each: no need to again
            self._held = HeldDenials.of(
                candidates,
                portfolio,
                market,
                balancer.settings,
                none_fit=none_fit,
                depths=depths,
                held_book=ranking.held_book(),  # the positions as `rank` valued them
            )
        return verdicts_from(ranking, len(candidates))

    def latest_json(self) -> str | None:
        """The latest output as OUTPUT_FILE's text (the daemon writes it into its held
        directory), if there is one."""
        latest = self.latest
        if latest is None:
            return None
        return json.dumps(latest.to_dict(), indent=2, default=str)
