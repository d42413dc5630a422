"""The status server in testnet mode, against the loopback Binance stand-in: the position the
cycle opened is on /status with the exchange's mark price, and /metrics carries the requests,
Binance's used weight and the orders; with the exchange down, /status says how old what it
shows is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from loopback import LoopbackBinance
from loopback.faults import Fault, Outage
from loopback.fixtures import daemon_settings, loopback, open_runtime_on
from ops_builders import TOKEN
from pydantic import SecretStr

from quantum_trader.app_ops import open_operations
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import ServerSettings

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"


@asynccontextmanager
async def served_after_a_cycle(
    loopback: LoopbackBinance, data_dir: Path, read_wait_s: float = 2.0
) -> AsyncIterator[tuple[aiohttp.ClientSession, str, datetime]]:
    """A testnet runtime on the stand-in trading BTC after one cycle, its status server
    reading the exchange at once on every request: a client with the token, the server's
    address and the cycle's time."""
    server = ServerSettings(
        port=0,
        token=SecretStr(TOKEN),
        exchange_read_interval_s=0.01,
        exchange_read_wait_s=read_wait_s,
    )
    settings = daemon_settings(data_dir, server=server)
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, metrics=metrics)
        ops = await open_operations(runtime, metrics, stack)
        assert ops.url is not None  # the server is on
        now = runtime.clock.now()
        ops.telemetry.on_cycle(await runtime.core.executor.run_cycle(now), 0.05, now)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            yield client, ops.url, now


async def test_status_and_metrics_of_a_testnet_runtime(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    async with served_after_a_cycle(loopback, tmp_path) as (client, url, _):
        async with client.get(f"{url}/status") as answer:
            status = await answer.json()
        async with client.get(f"{url}/metrics") as answer:
            text = await answer.text()
    assert status["mode"] == "testnet"
    assert status["market_source"] == "exchange"
    (position,) = status["positions"]
    assert position["symbol"] == BTC
    assert Decimal(position["mark_price"]) > 0
    assert position["protected"] is True
    assert status["last_cycle"]["opened"] == 1
    assert 'qt_orders_total{kind="MARKET",outcome="filled"} 1.0' in text
    assert 'qt_orders_total{kind="STOP_MARKET",outcome="accepted"} 1.0' in text
    used = next(x for x in text.splitlines() if x.startswith("qt_exchange_used_weight_1m "))
    assert float(used.split()[1]) == loopback.weight > 0
    assert 'qt_exchange_requests_total{operation="order"}' in text
    for operation in ("data", "account", "order", "cancel"):  # each from the start, 0 or more
        assert f'qt_exchange_requests_total{{operation="{operation}"}}' in text


def strict_json(text: str) -> Any:
    """As a browser's JSON.parse or jq reads it: no NaN, no Infinity."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in /status")

    return json.loads(text, parse_constant=refuse)


async def test_status_with_the_exchange_down_says_what_it_shows_is_as_of_the_last_read(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    async with served_after_a_cycle(loopback, tmp_path) as (client, url, now):

        async def status() -> Any:
            async with client.get(f"{url}/status") as answer:
                assert answer.status == 200
                return strict_json(await answer.text())

        before = await status()
        loopback.outage(Outage(path="", start_ms=0, end_ms=2**62))  # every request: 503
        for _ in range(500):  # until a read is due (every 0.01 s) and has failed
            during = await status()
            if during["exchange_read"]["failed"]:
                break
            await asyncio.sleep(0.01)
    read = before["exchange_read"]
    assert read == {
        "balance_as_of": now.isoformat(),
        "marks_as_of": now.isoformat(),
        "failed": None,
        "pending_since": None,
    }
    # The last figures read, said to be as of then (was: shown as current, nothing said).
    assert during["exchange_read"]["failed"] == "RetryLater"  # its class, as logged
    assert during["exchange_read"]["balance_as_of"] == read["balance_as_of"]
    assert during["account"] == before["account"]
    assert during["positions"] == before["positions"]


async def test_status_does_not_wait_for_a_slow_exchange_read(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """A hanging exchange held /status for the client's timeouts and retries (≈ 32 s). Now a
    request waits `exchange_read_wait_s` for the read, then gets the last figures read, said
    to be waiting for the exchange; the read goes on and the next request shows what it got."""
    async with served_after_a_cycle(loopback, tmp_path, read_wait_s=0.05) as (client, url, _):

        async def status() -> Any:
            async with client.get(f"{url}/status") as answer:
                assert answer.status == 200
                return strict_json(await answer.text())

        before = await status()
        # The account read is answered 0.5 s after it arrives: after the request's 0.05 s
        # wait by the event loop's own clock, however busy the machine.
        loopback.inject(Fault(path="/fapi/v3/account", delay_s=0.5))
        await asyncio.sleep(0.02)  # past the read interval
        waiting = await status()
        for _ in range(500):  # until the read has come back
            after = await status()
            if after["exchange_read"]["pending_since"] is None:
                break
            await asyncio.sleep(0.01)
    assert before["exchange_read"]["pending_since"] is None
    assert waiting["exchange_read"]["pending_since"] is not None
    assert waiting["exchange_read"]["failed"] is None
    assert waiting["exchange_read"]["balance_as_of"] == before["exchange_read"]["balance_as_of"]
    assert waiting["account"] == before["account"]
    assert after["exchange_read"]["failed"] is None
    assert after["exchange_read"]["balance_as_of"] == waiting["exchange_read"]["pending_since"]
