"""Issue 10's named case, end to end: after an entry whose answer is lost, the order lookup
route fails for 20 s. Before the keeper the daemon entered four times and left most of it
unprotected; now it enters once, protects it at once, and the books agree, with the streams
and on REST alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from lost_entry import run_lost_entry_and_read_outage

from quantum_trader.domain import OrderStatus

EVERY_READ = ("/fapi/v1/order", "/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders")


@pytest.mark.slow
@pytest.mark.parametrize("streams", [True, False], ids=["streams", "rest-only"])
@pytest.mark.parametrize(
    "down", [("/fapi/v1/order",), EVERY_READ], ids=["lookup-down", "every-read-down"]
)
async def test_a_lost_entry_answer_and_a_20_s_read_outage_enter_once_and_protect(
    streams: bool, down: tuple[str, ...], tmp_path: Path
) -> None:
    outcome = await run_lost_entry_and_read_outage(tmp_path / "data", streams=streams, down=down)
    assert outcome.entries == 1
    assert outcome.held > 0
    assert outcome.stops == [outcome.held]
    assert outcome.database == {"BTC/USDT:USDT": ("LONG", outcome.held)}
    assert outcome.entry_status is OrderStatus.FILLED
