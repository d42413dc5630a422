"""kill -9 of the daemon in testnet mode while it places orders, 20 seeds: after a restart the
database agrees with the exchange and every position is protected within one tick of the start
(tests/campaign/kill.py says how)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from campaign import seeds
from kill import kill_and_restart

GROUPS = [seeds(20)[i : i + 4] for i in range(0, 20, 4)]


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: "-".join(map(str, g)))
async def test_kill_9_during_order_placement_then_restart_agrees_and_protects(
    group: list[int], tmp_path: Path
) -> None:
    kills = await asyncio.gather(*(kill_and_restart(s, tmp_path / str(s)) for s in group))
    found = [
        f"seed {k.seed} ({k.target}+{k.offset_s:.2f}s): {p}" for k in kills for p in k.problems
    ]
    assert found == []
    assert [k.exit_code for k in kills] == [0] * len(kills)  # the restarted daemon stops cleanly
    assert any(k.killed_at_arrival for k in kills), "no kill landed on an order in flight"
