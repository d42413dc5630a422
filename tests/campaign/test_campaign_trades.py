"""What the campaigns feed the daemon lets every seed trade (a seed with no entry proves
nothing). The signals (campaign.SeededSignals): a draw per seed, symbol and bar. The daemon
keeps a window of a fixed length that slides as bars close, so a draw keyed on a bar's place in
the window gave a symbol the same action on every bar of a run, and every symbol HOLD in
0.4⁴ ≈ 2.6 % of seeds: those seeds made no entry (2.2 % of the hand-trading campaign's). The
heartbeat: sampled in real time, one faulted balance read kept entries off for a whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from campaign import SPEED, SYMBOLS, campaign_settings
from loopback.server import LoopbackBinance
from seeded_signals import SeededSignals

from quantum_trader.config import ExecutorSettings
from quantum_trader.domain import Bars

FIVE_MINUTES_MS = 300_000
WINDOW = 2040  # the daemon's window in the campaigns (history_bars)
LAST_OPEN_MS = 1_762_003_500_000  # a bar the campaigns see (2025-11-01 13:25 UTC)


def window(last_open_ms: int, length: int = WINDOW) -> dict[str, Bars]:
    """Every campaign symbol's `length` bars of 5 min, the last opening at `last_open_ms`."""
    times = last_open_ms - FIVE_MINUTES_MS * np.arange(length - 1, -1, -1, dtype=np.int64)
    prices = np.full(length, 100.0)
    return {
        s: Bars(s, FIVE_MINUTES_MS, times, prices, prices, prices, prices, prices) for s in SYMBOLS
    }


def actions(seed: int, bars: dict[str, Bars]) -> np.ndarray:
    """Symbol × bar."""
    signals = SeededSignals(seed).evaluate(bars)
    return np.array([signals[s].action for s in SYMBOLS])


def test_a_bars_action_is_the_same_whatever_its_place_in_the_window() -> None:
    """The window one bar on (a bar closed): the bars both hold keep their actions."""
    for seed in range(30000, 30050):
        before = actions(seed, window(LAST_OPEN_MS))
        after = actions(seed, window(LAST_OPEN_MS + FIVE_MINUTES_MS))
        assert (before[:, 1:] == after[:, :-1]).all(), seed


def test_a_symbols_newest_action_changes_as_bars_close() -> None:
    """The action of the newest bar, in the windows of three bars closing one after the other
    (what a run sees), does not stay put for every symbol of every seed (it did: the newest
    bar's draw was always the window's last one)."""
    newest = [
        actions(seed, window(LAST_OPEN_MS + k * FIVE_MINUTES_MS))[:, -1]
        for seed in range(30000, 30100)
        for k in range(3)
    ]
    runs = np.array(newest).reshape(100, 3, len(SYMBOLS))
    same = int((runs == runs[:, :1, :]).all(axis=1).sum())
    assert same < 0.5 * 100 * len(SYMBOLS)


def test_on_every_bar_some_symbol_buys_or_sells() -> None:
    """So every seed's first cycle has a candidate: no seed stays out for want of a signal."""
    for seed in [*range(20000, 21000), *range(30000, 31000)]:
        drawn = actions(seed, window(LAST_OPEN_MS, length=3))
        assert (drawn != 0).any(axis=0).all(), seed


def test_the_draws_still_give_buys_sells_and_holds() -> None:
    drawn = np.concatenate([actions(seed, window(LAST_OPEN_MS, 50)).ravel() for seed in range(200)])
    shares = {a: float(np.mean(drawn == a)) for a in (-1, 0, 1)}
    assert all(0.2 < share < 0.45 for share in shares.values()), shares


async def test_the_daemons_health_is_sampled_every_simulated_minute_as_live(tmp_path: Path) -> None:
    """The heartbeat (balance read, health) keeps real time: every 60 s it was 30 simulated
    minutes at the campaigns' 30×, longer than a run, so one faulted balance read at the start
    held health CRITICAL and every entry off for most of it (seed 30028: no entry)."""
    async with LoopbackBinance() as server:
        settings = campaign_settings(tmp_path, server)
    simulated_s = settings.executor.heartbeat_interval_s * SPEED
    assert simulated_s <= ExecutorSettings().heartbeat_interval_s
