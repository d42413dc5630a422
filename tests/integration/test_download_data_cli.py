"""download-data against the loopback stand-in: keyless public client, candle-store layout,
progress, and the command's registration and option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from loopback import LoopbackBinance, loopback_api_urls
from loopback.fixtures import loopback
from typer.testing import CliRunner

from quantum_trader.cli import app
from quantum_trader.cli_data import download_market_data, market_dir, parse_request
from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import ReplayFeed

__all__ = ["loopback"]
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


async def test_candles_and_funding_land_where_the_replay_reads_them(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)  # paper mode, no keys
    now = utc_from_ms(loopback.state.now_ms + 42_000)
    seen: list[tuple[str, int, int]] = []
    written = await download_market_data(
        settings,
        (BTC, ETH),
        "5m",
        2,
        now,
        api_urls=loopback_api_urls(loopback.base_url),
        progress=lambda *step: seen.append(step),
    )

    assert written == {BTC: 2 * 288 - 1, ETH: 2 * 288 - 1}  # from the first bar after now - 2d
    assert market_dir(settings) == tmp_path / "market"
    store = CandleStore(tmp_path / "market")
    bars = store.load_bars(BTC, "5m")
    assert int(bars.time_ms[-1]) + 300_000 <= ms_from_utc(now)  # closed bars only
    assert np.all(np.diff(bars.time_ms) == 300_000)
    times, rates = store.load_funding(ETH)
    assert times.size == 6
    assert np.all(rates > 0)
    assert seen[-1] == (ETH, 575, 575)
    feed = ReplayFeed(store, (BTC, ETH), "5m", 100)
    assert feed.end == utc_from_ms(int(bars.time_ms[-1]) + 300_000)
    assert not any(name in str(loopback.requests) for name in ("apiKey", "signature"))


async def test_an_unknown_symbol_names_itself(loopback: LoopbackBinance, tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="NOPE/USDT:USDT"):
        await download_market_data(
            Settings(data_dir=tmp_path),
            ("NOPE/USDT:USDT",),
            "1h",
            1,
            utc_from_ms(loopback.state.now_ms),
            api_urls=loopback_api_urls(loopback.base_url),
        )


def test_bad_options_are_each_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_request("BTCUSDT", "3m", 0)
    assert [p.split(":", 1)[0] for p in caught.value.problems] == [
        "--timeframe",
        "--days",
        "--symbols",
    ]
    assert parse_request(f"{BTC}, {ETH}", "1d", 0.5) == (BTC, ETH)
    for days in (float("nan"), float("inf")):
        with pytest.raises(ConfigurationError, match="--days: must be a positive number"):
            parse_request(BTC, "1h", days)


def test_the_command_is_registered_on_the_cli() -> None:
    import quantum_trader.cli_data  # noqa: F401  registers the command

    result = CliRunner().invoke(app, ["download-data", "--help"])
    assert result.exit_code == 0
    assert "--symbols" in result.output
    assert "--timeframe" in result.output
    refused = CliRunner().invoke(app, ["download-data", "--symbols", BTC, "--days", "-1"])
    assert isinstance(refused.exception, ConfigurationError)
