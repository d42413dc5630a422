"""The daemon's core with the RL sizing method on the bundled sample: the agent learns from
every trade its entries open, once, including the one whose entry's answer was lost while the
exchange could not be read (booked by a later tick). Was: the executor kept the agent's
decision only when `enter` returned a position, so that trade taught the agent nothing."""

from __future__ import annotations

from pathlib import Path

from foundation_builders import build_rig
from structlog.testing import capture_logs
from test_foundation_trading import step

from quantum_trader.domain import OrderRequest, ReasonCode
from quantum_trader.sizing.desk import RL_PENDING


async def test_a_trade_whose_entry_answer_was_lost_is_learnt_from_like_every_other(
    tmp_path: Path,
) -> None:
    rig = await build_rig(tmp_path, sizing={"method": "rl"})
    exchange = rig.exchange
    exchange.lose_next_answer = True  # the first entry executes; its answer is lost
    lost: list[str] = []

    async def unreadable_after_the_first_entry(request: OrderRequest) -> None:
        if not lost and request.client_order_id.startswith("qt-e-"):
            lost.append(request.client_order_id)
            exchange.reads_failing = 1  # the REST tick after its blind stop: a later tick books it

    exchange.while_in_flight = unreadable_after_the_first_entry
    with capture_logs() as logs:
        for _ in range(2000):
            await step(rig)
            trades = await rig.repository.closed_trades()
            if any(t.entry_order_id in lost for t in trades):
                break

    [entry] = lost
    verdicts = [d.verdict for d in await rig.repository.recent_decisions(100_000)]
    assert any(v.reason is ReasonCode.ORDER_UNSETTLED for v in verdicts)  # no position yet
    learnt = [e["entry_order_id"] for e in logs if e["event"] == "rl_learned"]
    assert entry in learnt
    assert sorted(learnt) == sorted(t.entry_order_id for t in trades if t.r_multiple is not None)
    assert len(set(learnt)) == len(learnt)
    assert entry not in await rig.repository.load_state(RL_PENDING)
