"""The keeper's regime memory, read through the context its planner gets: a TRENDING →
CHOPPY turn (on which the stop maths tighten the trail) is in exactly one tick's context,
whichever mapping carries the regimes, and the checks a backtest makes before a tick
(`steady_at`, `quiet_at`: not advancing) see what that tick will see without using it up."""

from __future__ import annotations

from collections.abc import Mapping

from integration_builders import BTC, ETH, T0, bars, new_keeper, paper_account

from quantum_trader.domain import Regime
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.storage.memory import InMemoryRepository


class Regimes:
    """What the composition root hands the keeper: the latest market view's regimes."""

    def __init__(self) -> None:
        self.current: Mapping[str, Regime] = {}

    def __call__(self) -> tuple[bool, Mapping[str, Regime]]:
        return False, self.current


async def keeper_with(regimes: Regimes) -> PositionKeeper:
    account = await paper_account(bars(BTC, [100.0] * 50), bars(ETH, [50.0] * 50))
    return await new_keeper(account.exchange, InMemoryRepository(), T0, conditions=regimes)


def turned(keeper: PositionKeeper, *, advance: bool) -> frozenset[str]:
    return keeper._context(advance=advance).turned_choppy


async def test_a_turn_to_choppy_is_seen_once_whatever_mapping_carries_it() -> None:
    regimes = Regimes()
    keeper = await keeper_with(regimes)
    trending = {BTC: Regime.TRENDING, ETH: Regime.CHOPPY}
    regimes.current = trending
    assert turned(keeper, advance=True) == frozenset()
    assert turned(keeper, advance=True) == frozenset()  # the same mapping again

    choppy = {BTC: Regime.CHOPPY, ETH: Regime.CHOPPY}
    regimes.current = choppy
    assert turned(keeper, advance=False) == {BTC}  # a check between ticks sees it ...
    assert turned(keeper, advance=False) == {BTC}  # ... and does not use it up
    assert turned(keeper, advance=True) == {BTC}  # the tick sees it
    assert turned(keeper, advance=True) == frozenset()  # and only that tick
    assert turned(keeper, advance=False) == frozenset()

    regimes.current = dict(choppy)  # equal regimes in another mapping (the next hour's view)
    assert turned(keeper, advance=True) == frozenset()

    regimes.current = dict(trending)
    assert turned(keeper, advance=True) == frozenset()
    regimes.current = choppy  # a mapping seen before, now a turn again
    assert turned(keeper, advance=True) == {BTC}
    assert turned(keeper, advance=True) == frozenset()
