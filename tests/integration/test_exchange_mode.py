"""testnet mode end to end against the loopback Binance stand-in: account checks, one executor
cycle that enters and protects a position, a monitor tick, a clean stop, and the refusals."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from loopback import LoopbackBinance
from loopback.faults import Fault
from loopback.fixtures import (
    API_KEY,
    API_SECRET,
    daemon_settings,
    loopback,
    open_runtime_on,
)
from structlog.testing import capture_logs

from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError, OperatorActionRequired
from quantum_trader.execution.ccxt_exchange import DEFAULT_RETRY_DELAYS_S
from quantum_trader.loops import periodic

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"


def demo_settings(data_dir: Path, symbols: tuple[str, ...] = (BTC,)) -> Settings:
    return daemon_settings(data_dir, symbols)


async def test_a_cycle_enters_and_protects_on_the_exchange_then_stops_cleanly(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    stopping = asyncio.Event()
    with capture_logs() as logs:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, demo_settings(tmp_path), stack, stopping)
            assert loopback.count("/fapi/v1/positionSide/dual") == 1
            assert loopback.state.holdings["BTCUSDT"].margin_type == "isolated"
            assert loopback.state.holdings["BTCUSDT"].leverage == 3

            loopback.reset_counts()
            summary = await runtime.core.executor.run_cycle(runtime.clock.now())
            assert summary.opened == 1
            # The marks in one request at most, and the entry's own mark (sized at it,
            # market/live_marks.py): weight 1, read over REST here as no stream runs.
            marks = [p.get("symbol") for m, path, p in loopback.requests
                     if path == "/fapi/v1/premiumIndex"]  # fmt: skip
            assert marks.count(None) <= 1
            assert [s for s in marks if s is not None] == ["BTCUSDT"]

            holding = loopback.state.holdings["BTCUSDT"]
            assert holding.amount > 0
            algo = list(loopback.state.algo_orders.values())
            stops = [o for o in algo if o["orderType"] == "STOP_MARKET"]
            assert len(stops) == 1
            assert stops[0]["reduceOnly"] is True
            assert stops[0]["side"] == "SELL"
            assert Decimal(stops[0]["triggerPrice"]) < Decimal("100000")
            position = runtime.core.keeper.positions[BTC]
            assert position.stop_order_id == stops[0]["clientAlgoId"]

            loopback.reset_counts()
            await runtime.core.keeper.tick(runtime.clock.now())
            assert loopback.count("/fapi/v1/premiumIndex") == 1
            assert loopback.state.algo_orders.keys() == {o["clientAlgoId"] for o in algo}

            async def cycle(now: datetime) -> None:
                await runtime.core.executor.run_cycle(now)

            tasks = [
                asyncio.create_task(periodic("executor", 30, runtime.clock, stopping, cycle)),
                asyncio.create_task(
                    periodic("monitor", 5, runtime.clock, stopping, runtime.core.keeper.tick)
                ),
            ]
            await asyncio.sleep(0)
            stopping.set()  # what the SIGTERM handler does
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
            assert all(task.done() and task.exception() is None for task in tasks)
            await runtime.repository.flush()
        assert (tmp_path / "quantum_trader.db").is_file()
    events = [entry["event"] for entry in logs]
    assert "runtime_ready" in events
    assert "global_regime_refreshed" in events
    failures = [entry for entry in logs if entry["event"] == "loop_step_failed"]
    assert failures == [], failures
    rendered = repr(logs)
    assert API_KEY not in rendered
    assert API_SECRET not in rendered


async def test_the_global_regime_comes_from_btc_daily_candles(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, demo_settings(tmp_path), stack, asyncio.Event())
        loopback.reset_counts()
        await runtime.core.executor.run_cycle(runtime.clock.now())
        daily = [p for m, path, p in loopback.requests if p.get("interval") == "1d"]
        assert len(daily) == 1
        assert daily[0]["symbol"] == "BTCUSDT"
        loopback.reset_counts()
        await runtime.core.executor.run_cycle(runtime.clock.now())
        assert not [p for m, path, p in loopback.requests if p.get("interval") == "1d"]


async def test_a_hedge_mode_account_refuses_to_start(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    loopback.state.dual_side_position = True
    with pytest.raises(OperatorActionRequired, match="hedge mode"):
        async with AsyncExitStack() as stack:
            await open_runtime_on(loopback, demo_settings(tmp_path), stack, asyncio.Event())
    assert not (tmp_path / "quantum_trader.db").exists()
    assert loopback.count("/fapi/v1/order", "POST") == 0


async def test_an_unknown_configured_symbol_is_a_configuration_error(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = demo_settings(tmp_path, (BTC, "NOPE/USDT:USDT"))
    with pytest.raises(ConfigurationError, match=r"market\.symbols: NOPE/USDT:USDT"):
        async with AsyncExitStack() as stack:
            await open_runtime_on(loopback, settings, stack, asyncio.Event())


async def test_a_position_grown_by_hand_is_adopted_and_its_stop_resized_at_start(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = demo_settings(tmp_path)
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, asyncio.Event())
        await runtime.core.executor.run_cycle(runtime.clock.now())
    loopback.state.holdings["BTCUSDT"].amount += Decimal("0.5")  # bought by hand meanwhile
    held = loopback.state.holdings["BTCUSDT"].amount
    with capture_logs() as logs:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, settings, stack, asyncio.Event())
            assert runtime.core.keeper.positions["BTC/USDT:USDT"].quantity == held
    stops = [
        o
        for o in loopback.state.algo_orders.values()
        if o["symbol"] == "BTCUSDT" and o["algoStatus"] == "NEW" and o["orderType"] == "STOP_MARKET"
    ]
    assert [Decimal(o["quantity"]) for o in stops] == [held]
    [grown] = [e for e in logs if e["event"] == "position_grown"]
    assert grown["log_level"] == "error"


async def test_start_up_waits_out_an_exchange_blip_before_it_trades(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """positionRisk answers 503 to more tries than one read makes: the first reconciliation
    gives up with RetryLater, the daemon logs it, waits and reconciles before it is ready."""
    for _ in range(len(DEFAULT_RETRY_DELAYS_S) + 2):
        loopback.inject(Fault("/fapi/v3/positionRisk", status=503, body="Service Unavailable"))
    stopping = asyncio.Event()
    with capture_logs() as logs:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, demo_settings(tmp_path), stack, stopping)
            assert runtime.core.keeper.view().reconciled_at is not None
    events = [e["event"] for e in logs]
    assert "startup_reconcile_retry" in events
    assert events.index("startup_reconcile_retry") < events.index("runtime_ready")
