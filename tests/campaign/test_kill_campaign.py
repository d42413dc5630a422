"""kill -9 of the daemon in testnet mode while it places orders, 20 kills (four chains of five,
each kill its own seeded draw): after every restart the database agrees with the exchange and
every position is protected within one tick of the start (tests/campaign/kill.py says how)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from campaign import seeds
from kill import kill_chain

CHAINS = seeds(4)


@pytest.mark.slow
async def test_kill_9_during_order_placement_then_restart_agrees_and_protects(
    tmp_path: Path,
) -> None:
    chains = await asyncio.gather(*(kill_chain(s, tmp_path / str(s), 5) for s in CHAINS))
    kills = [kill for chain in chains for kill in chain]
    found = [
        f"kill {k.seed} ({k.target} +{k.offset_s:.2f} s): {problem}"
        for k in kills
        for problem in k.problems
    ]
    assert len(kills) == 20
    assert found == []
    assert [k.exit_code for k in kills] == [0] * len(kills)  # each chain stops cleanly at last
    assert sum(k.killed_at_arrival for k in kills) >= 5, "too few kills landed on an order"
