"""`lift-blacklist` for a symbol that is not blacklisted (docs/BAD_INPUTS.md, "Operator
commands"): the CLI refuses it while it can tell (exit 1, nothing filed), and the daemon,
which checks again when it carries a request out, leaves the symbol's statistics as they were
and says so (`blacklist_lift_ignored`). Was: filed, carried out, `blacklist_lifted` logged
and the symbol's losing streak restarted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from daemon_harness import cli
from structlog.testing import capture_logs
from test_ops_operator_controls import open_desk

from quantum_trader.domain import SymbolStats
from quantum_trader.ops.data_dir import hold_data_dir
from quantum_trader.ops.presence import HEARTBEAT_FILE
from quantum_trader.ops.requests import NAMESPACE, RequestKind
from quantum_trader.portfolio.ledger import STATS_NAMESPACE
from quantum_trader.portfolio.performance import stats_to_dict
from quantum_trader.storage.sqlite import SqliteRepository

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
DATABASE = "quantum_trader.db"
# ETH lost 20 in a row (blacklisted); BTC lost 8 in a row, a streak a lift must not restart.
BLACKLISTED = SymbolStats(ETH, 20, 0, 20, -400.0, -20.0, -20, (-1.0,) * 20, None, True)
LOSING = SymbolStats(BTC, 12, 4, 8, -90.0, -4.0, -8, (1.0,) * 4 + (-1.0,) * 8, None, False)


async def seed(database: Path, *stats: SymbolStats) -> None:
    """`stats` saved where the ledger keeps them, as an earlier run left them."""
    repository = await SqliteRepository.open(database)
    try:
        for one in stats:
            await repository.save_state(STATS_NAMESPACE, one.symbol, stats_to_dict(one))
    finally:
        await repository.close()


async def test_the_daemon_ignores_a_lift_for_a_symbol_not_blacklisted(tmp_path: Path) -> None:
    await seed(tmp_path / DATABASE, BLACKLISTED, LOSING)
    desk = await open_desk(tmp_path)
    try:
        saved_before = await desk.repository.load_state(STATS_NAMESPACE)
        for symbol in (BTC, SOL):  # losing but not blacklisted; never traded
            await desk.file(f"{RequestKind.LIFT_BLACKLIST}{symbol}")
        with capture_logs() as logs:
            await desk.step()
        ignored = sorted(
            (e["symbol"], e["why"], e["log_level"])
            for e in logs
            if e["event"] == "blacklist_lift_ignored"
        )
        assert ignored == [(BTC, "not blacklisted", "info"), (SOL, "not blacklisted", "info")]
        assert "blacklist_lifted" not in [e["event"] for e in logs]
        assert desk.core.ledger.stats[BTC] == LOSING  # the streak is not restarted
        assert SOL not in desk.core.ledger.stats
        assert await desk.repository.load_state(STATS_NAMESPACE) == saved_before
        assert await desk.repository.load_state(NAMESPACE) == {}  # done, not left pending

        await desk.file(f"{RequestKind.LIFT_BLACKLIST}{ETH}")  # blacklisted: lifted
        with capture_logs() as logs:
            await desk.step()
        assert [e["symbol"] for e in logs if e["event"] == "blacklist_lifted"] == [ETH]
        lifted = desk.core.ledger.stats[ETH]
        assert (lifted.blacklisted, lifted.streak) == (False, 0)

        await desk.file(f"{RequestKind.LIFT_BLACKLIST}{ETH}")  # lifted since it was filed
        with capture_logs() as logs:
            await desk.step()
        assert [e["event"] for e in logs if "blacklist_lift" in e["event"]] == [
            "blacklist_lift_ignored"
        ]
    finally:
        await desk.repository.close()


def test_the_cli_refuses_a_lift_for_a_symbol_not_blacklisted_and_files_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    asyncio.run(seed(data_dir / DATABASE, BLACKLISTED, LOSING))
    with hold_data_dir(data_dir):  # as a running daemon holds it
        (data_dir / HEARTBEAT_FILE).write_text(datetime.now(UTC).isoformat())
        for symbol in (BTC, SOL):  # configured symbols: BTC traded, SOL never
            done = cli(data_dir, "lift-blacklist", symbol)
            assert done.returncode == 1, done.stderr
            (line,) = done.stderr.strip().splitlines()
            assert line == f"error: {symbol} is not blacklisted (nothing to lift)"
            assert asyncio.run(pending(data_dir)) == []
        done = cli(data_dir, "lift-blacklist", ETH)
        assert done.returncode == 0, done.stderr
        assert " ".join(done.stdout.split()).startswith(
            f"lift-blacklist {ETH} requested: a daemon is running on {data_dir}"
        )
        assert asyncio.run(pending(data_dir)) == [f"{RequestKind.LIFT_BLACKLIST}{ETH}"]


async def pending(data_dir: Path) -> list[str]:
    repository = await SqliteRepository.open(data_dir / DATABASE, read_only=True)
    try:
        return sorted(await repository.load_state(NAMESPACE))
    finally:
        await repository.close()
