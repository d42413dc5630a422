"""The balancer as the chain runs it, keeping its latest full analysis for the JSON file and
`status` (SPEC §4.2: the latest output is written to the data directory)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from quantum_trader.domain import Candidate, GateName, MarketView, PortfolioView, Verdict
from quantum_trader.gates.balancer import PortfolioBalancer, verdicts_from
from quantum_trader.gates.balancer_output import BalancerOutput

OUTPUT_FILE = "portfolio_balancer.json"


class BalancerJournal:
    """BatchGate: the balancer's verdicts, with its latest output kept in `latest`."""

    def __init__(self, balancer: PortfolioBalancer) -> None:
        self._balancer = balancer
        self.latest: BalancerOutput | None = None

    @property
    def name(self) -> GateName:
        return GateName.BALANCER

    def review_all(
        self,
        candidates: Sequence[Candidate],
        portfolio: PortfolioView,
        market: MarketView,
        now: datetime,
    ) -> list[Verdict]:
        self.latest = self._balancer.analyze(candidates, portfolio, market, now)
        return verdicts_from(self.latest, len(candidates))

    def write_latest(self, data_dir: Path) -> None:
        """Replace the JSON file atomically with the latest output, if there is one."""
        if self.latest is None:
            return
        target = data_dir / OUTPUT_FILE
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.latest.to_dict(), indent=2, default=str))
        temporary.replace(target)
