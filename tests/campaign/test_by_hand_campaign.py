"""The fault campaign with a person trading by hand on the same account (reductions, closes,
flips, additions, positions opened on a free symbol, our stop or take-profit cancelled;
tests/campaign/by_hand.py says what is drawn and watched): seeds 30001–30010, five at a time.
Beyond the fault campaign's checks, every close
by hand is booked MANUAL at its own trade's price, no fee is booked beyond what the exchange
charged, and a take-profit of ours cancelled by hand is back within its bound, never two at
once, none after one executed (by_hand_targets.py), and no more than one stop of ours stands
on a symbol, nor one on a symbol holding nothing, longer than a replacement or a release
takes (by_hand_stops.py).

More seeds from the command line, one process each (by_hand.py's docstring):

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/by_hand.py campaign 30001 100
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from by_hand import run_by_hand
from by_hand_check import hand_problems

FIRST_SEED, SEEDS, AT_ONCE = 30001, 10, 5
GROUPS = [
    list(range(start, min(start + AT_ONCE, FIRST_SEED + SEEDS)))
    for start in range(FIRST_SEED, FIRST_SEED + SEEDS, AT_ONCE)
]


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: f"{g[0]}-{g[-1]}")
async def test_a_person_trading_by_hand_costs_no_stop_and_is_booked_at_its_own_trades(
    group: list[int], tmp_path: Path
) -> None:
    results = await asyncio.gather(*(run_by_hand(seed, tmp_path / str(seed)) for seed in group))
    found = [
        line for seed, r in zip(group, results, strict=True) for line in hand_problems(seed, r)
    ]
    assert found == [], "\n".join(found)
    assert sum(len(r.closes) for r in results) >= len(group), "too few closes by hand"
