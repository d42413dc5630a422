"""The paper account file: damaged → refused at start naming the file (exit 1), never reset;
and the paper account and the database must tell one story (neither lost nor replaced)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DATABASE, PAPER_STATE, Daemon, cli, eventually
from damage_fixtures import contents, data_dir, stopped_daemon_template

from quantum_trader.clock import utc_from_ms
from quantum_trader.errors import OperatorActionRequired
from quantum_trader.execution.paper_state import load_state
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.market.layout import file_stem
from quantum_trader.storage.sqlite import SqliteRepository

__all__ = ["data_dir", "stopped_daemon_template"]
Edit = Callable[[dict[str, Any]], object]


def edit_account(data_dir: Path, change: Edit) -> None:
    path = data_dir / PAPER_STATE
    account = json.loads(path.read_text())
    change(account)
    path.write_text(json.dumps(account))


def first_position(account: dict[str, Any]) -> list[str]:
    return next(iter(account["positions"].values()))


def set_first_position(index: int, value: str) -> Edit:
    return lambda account: first_position(account).__setitem__(index, value)


def set_first_order(field: str, value: object) -> Edit:
    return lambda account: account["orders"][0].__setitem__(field, value)


DAMAGED_VALUES: dict[str, tuple[Edit, str]] = {
    "NaN wallet": (lambda a: a.__setitem__("wallet_usdt", "NaN"), "wallet_usdt is NaN"),
    "infinite wallet": (lambda a: a.__setitem__("wallet_usdt", "Infinity"), "wallet_usdt is"),
    "wallet not a number": (lambda a: a.__setitem__("wallet_usdt", "lots"), "not a number"),
    "wallet as JSON null": (lambda a: a.__setitem__("wallet_usdt", None), "not a number"),
    "negative quantity": (set_first_position(1, "-13"), "quantity is -13, not above zero"),
    "zero entry price": (set_first_position(2, "0"), "entry_price is 0, not above zero"),
    "unknown side": (set_first_position(0, "UP"), "'UP' is not a valid Side"),
    "NaN fee": (set_first_order("fee_usdt", "NaN"), "fee_usdt is NaN"),
    "overfilled order": (set_first_order("filled_quantity", "1e9"), "filled_quantity"),
    "leverage 1000": (
        lambda a: a["leverage"].__setitem__(next(iter(a["leverage"])), 1000),
        "above Binance's 125",
    ),
    "negative clock": (lambda a: a.__setitem__("last_ms", -5), "last_ms is -5"),
    "missing field": (lambda a: a.pop("fees_usdt"), "missing field 'fees_usdt'"),
    "unknown version": (lambda a: a.__setitem__("version", 99), "unsupported state version 99"),
    "negative pruned fills": (
        lambda a: a.__setitem__("pruned_fills", -3),
        "pruned_fills is -3, not an integer of at least 0",
    ),
    "pruned fills missing": (lambda a: a.pop("pruned_fills"), "missing field 'pruned_fills'"),
    "held span closed before it opened": (
        lambda a: a["held"].__setitem__("BTC/USDT:USDT", [[1000, 5]]),
        "held span of BTC/USDT:USDT closed_ms is 5, not an integer of at least 1000",
    ),
    "held span not a pair": (
        lambda a: a["held"].__setitem__("BTC/USDT:USDT", [7]),
        "held span of BTC/USDT:USDT is 7, not [opened_ms, closed_ms]",
    ),
}


def test_a_nan_wallet_is_refused_at_start_and_nothing_is_lost(data_dir: Path) -> None:
    edit_account(data_dir, lambda a: a.__setitem__("wallet_usdt", "NaN"))
    before = contents(data_dir)

    done = cli(data_dir, "run")

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: paper account {data_dir / PAPER_STATE} is damaged (wallet_usdt is NaN): stop "
        "the daemon, then restore the file from a backup, or move it aside together with "
        "quantum_trader.db (and its -wal and -shm files) to start a fresh paper account"
    ]
    assert contents(data_dir) == before


@pytest.mark.parametrize("damage", list(DAMAGED_VALUES))
def test_a_damaged_value_is_refused_naming_the_file(data_dir: Path, damage: str) -> None:
    change, expected = DAMAGED_VALUES[damage]
    edit_account(data_dir, change)
    before = contents(data_dir)
    with pytest.raises(OperatorActionRequired) as caught:
        load_state(data_dir / PAPER_STATE)
    message = str(caught.value)
    assert message.startswith(f"paper account {data_dir / PAPER_STATE} is damaged (")
    assert expected in message
    assert contents(data_dir) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "", "not valid JSON"),
        (lambda text: "[1, 2, 3]", "not a JSON object"),
        (lambda text: "\x00\xff" * 40, "not valid JSON"),
    ],
    ids=["truncated", "empty", "a list", "binary"],
)
def test_an_unreadable_file_is_refused_naming_the_file(
    data_dir: Path, content: Callable[[str], str], expected: str
) -> None:
    path = data_dir / PAPER_STATE
    path.write_text(content(path.read_text()), errors="surrogateescape")
    with pytest.raises(OperatorActionRequired, match=expected):
        load_state(path)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / PAPER_STATE).mkdir()
    with pytest.raises(OperatorActionRequired, match="cannot be read"):
        load_state(tmp_path / PAPER_STATE)


@pytest.mark.parametrize("how", ["deleted", "zero bytes"])
def test_a_lost_database_beside_a_paper_account_is_refused(data_dir: Path, how: str) -> None:
    database = data_dir / DATABASE
    if how == "deleted":
        database.unlink()
    else:
        database.write_bytes(b"")
    before = contents(data_dir)

    done = cli(data_dir, "run")

    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert re.match(
        f"error: the paper account {data_dir / PAPER_STATE} has [1-9][0-9]* fills? and", line
    ), line
    assert "has no fills (deleted, emptied or replaced?): restore the database" in line
    assert contents(data_dir) == before  # not even an empty database was created


def test_a_database_replaced_by_a_fresh_one_is_refused(data_dir: Path, tmp_path: Path) -> None:
    """Another data directory's database, new and empty, copied over this one's."""
    fresh = tmp_path / "elsewhere"

    async def create() -> None:
        await (await SqliteRepository.open(fresh / DATABASE)).close()

    asyncio.run(create())
    (data_dir / DATABASE).write_bytes((fresh / DATABASE).read_bytes())
    before = contents(data_dir)
    done = cli(data_dir, "run")
    assert done.returncode == 1
    assert "has no fills (deleted, emptied or replaced?)" in done.stderr
    assert contents(data_dir) == before


@pytest.mark.parametrize("how", ["deleted", "replaced by a fresh account"])
def test_a_lost_paper_account_beside_a_database_is_refused(data_dir: Path, how: str) -> None:
    paper = data_dir / PAPER_STATE
    if how == "deleted":
        paper.unlink()
    else:
        edit_account(data_dir, fresh_account)
    before = contents(data_dir)

    done = cli(data_dir, "run")

    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert re.match(f"error: the database {data_dir / DATABASE} holds [1-9][0-9]* fills? and", line)
    state = "missing" if how == "deleted" else "new (it has no fills)"
    assert f"but the paper account {paper} is {state}: restore the paper account" in line
    assert contents(data_dir) == before


def test_a_pruned_paper_account_beside_its_database_starts(data_dir: Path) -> None:
    """Every fill forgotten as Binance forgets trades after six months, and counted
    (`pruned_fills`): the database's fills are the account's own, so the daemon starts. Was:
    refused as "the paper account … is new (it has no fills)"."""

    def prune_every_fill(account: dict[str, Any]) -> None:
        account["pruned_fills"] += len(account["fills"])
        account["fills"] = []

    edit_account(data_dir, prune_every_fill)
    assert json.loads((data_dir / PAPER_STATE).read_text())["pruned_fills"] > 0
    daemon = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: daemon.logged_so_far("runtime_ready") or None, 60, "the start")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr


def fresh_account(account: dict[str, Any]) -> None:
    for key in ("positions", "leverage", "funding", "held"):
        account[key] = {}
    account["orders"], account["fills"], account["pruned_fills"] = [], [], 0


def test_a_restart_resumes_no_earlier_than_the_paper_account(data_dir: Path) -> None:
    """The database's clock is saved once a cycle; the paper account moves on with every
    monitor tick. A restart resumes at the later of the two, so no stop is left blind."""
    paper_last = utc_from_ms(json.loads((data_dir / PAPER_STATE).read_text())["last_ms"])
    daemon = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: daemon.logged_so_far("runtime_ready"), 30, "the daemon ready")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    (ready,) = daemon.named("runtime_ready")
    assert datetime.fromisoformat(ready["replay_from"]) >= paper_last


def test_a_database_with_no_replay_clock_resumes_no_earlier_than_the_paper_account(
    data_dir: Path,
) -> None:
    """A run stopped before its first cycle saved the replay's clock (its database held
    locked by another program): the restart resumes where the paper account is, not at the
    recording's start (was: the account's time went back, a position closed then was saved
    closed before it opened, and the next start refused the account as damaged)."""
    paper_last = utc_from_ms(json.loads((data_dir / PAPER_STATE).read_text())["last_ms"])
    with closing(sqlite3.connect(data_dir / DATABASE)) as database, database:
        database.execute("DELETE FROM state WHERE namespace = 'replay'")
    daemon = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: daemon.logged_so_far("runtime_ready"), 30, "the daemon ready")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    (ready,) = daemon.named("runtime_ready")
    assert datetime.fromisoformat(ready["replay_from"]) >= paper_last


def test_a_changed_initial_balance_on_a_kept_paper_account_is_said_once(data_dir: Path) -> None:
    """The setting makes a fresh account only. Was (found by an outside-style probe,
    2026-12-04): a restart with `QT_EXCHANGE__PAPER_INITIAL_BALANCE_USDT=50000` went on with the
    10,000 USDT account without a word, and `status` showed 10,000."""
    daemon = Daemon.start(data_dir, QT_EXCHANGE__PAPER_INITIAL_BALANCE_USDT="50000")
    try:
        (said,) = eventually(
            lambda: daemon.logged_so_far("paper_initial_balance_not_applied") or None,
            60,
            "the warning that the kept account's balance stands",
        )
        eventually(lambda: daemon.logged_so_far("runtime_ready") or None, 60, "the start")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr
    assert said["level"] == "warning"
    assert said["setting"] == "50000"
    assert said["account_started_with"] == "10000"
    assert said["hint"] == (
        f"exchange.paper_initial_balance_usdt (50000) makes a fresh paper account only; "
        f"{data_dir / PAPER_STATE} was started with 10000 USDT and is kept: to start afresh "
        "with the new balance, stop the daemon and move paper_exchange.json aside together "
        "with quantum_trader.db (and its -wal and -shm files)"
    )
    assert len(daemon.named("paper_initial_balance_not_applied")) == 1


def test_symbols_that_leave_out_what_the_account_holds_are_a_configuration_line(
    data_dir: Path,
) -> None:
    """A restart with fewer symbols than the kept account holds positions on. Was (found by
    an outside-style probe, 2026-12-04): `error: paper exchange state … holds positions or
    stops on X, which have no recorded prices or market rules here`, exit 1: neither the
    setting nor what to do, and the prices were recorded."""
    state = load_state(data_dir / PAPER_STATE)
    assert state is not None
    held = sorted(state.positions)
    assert held
    other = next(s for s in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT") if s not in held)
    before = contents(data_dir)
    done = cli(data_dir, "run", timeout_s=120, QT_SERVER__PORT="0", QT_MARKET__SYMBOLS=other)
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("{")]
    assert line == (
        f"configuration error: market.symbols: leaves out {', '.join(held)}, which the paper "
        f"account {data_dir / PAPER_STATE} holds positions or stops on: list them again "
        "(market.symbols, QT_MARKET__SYMBOLS) so that the daemon manages them to their exit, "
        "or stop it and move paper_exchange.json aside together with quantum_trader.db (and "
        "its -wal and -shm files) to start afresh"
    )
    assert contents(data_dir) == before


@pytest.mark.parametrize("universe", ["fixed", "top_volume"])
def test_a_replay_dir_without_a_held_symbol_is_one_line_naming_both(
    data_dir: Path, tmp_path: Path, universe: str
) -> None:
    """market.replay_dir changed to a directory without a symbol the kept account holds. Was:
    with a fixed list, `unknown symbol …: download-data` (not that the account holds it, nor
    that the old directory has it); with the universe rule, `market.symbols: leaves out …:
    list them again`, which then fails the same way; the paper exchange's own backstop said
    `… which have no recorded prices or market rules here`."""
    state = load_state(data_dir / PAPER_STATE)
    assert state is not None
    held = sorted(state.positions)
    replay = tmp_path / "recorded"
    replay.mkdir()
    left_out = tuple(file_stem(symbol) + "-" for symbol in held)
    for source in bundled_sample_dir().iterdir():
        if not source.name.startswith(left_out):
            shutil.copyfile(source, replay / source.name)
    before = contents(data_dir)
    done = cli(
        data_dir,
        "run",
        timeout_s=120,
        QT_MARKET__REPLAY_DIR=str(replay),
        QT_MARKET__UNIVERSE__RULE=universe,
    )
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("{")]
    symbols, listed = ", ".join(held), ",".join(held)
    assert line == (
        f"configuration error: market.replay_dir: {replay} has no 5m candles of {symbols}, "
        f"which the paper account {data_dir / PAPER_STATE} holds positions or stops on: point "
        "market.replay_dir (QT_MARKET__REPLAY_DIR) back at the data they were traded on, or "
        f"add their candles there (quantum-trader download-data --symbols {listed} --timeframe "
        "5m, or import-data), so that the daemon manages them to their exit; or "
        "stop it and move paper_exchange.json aside together with quantum_trader.db (and its "
        "-wal and -shm files) to start afresh"
    )
    assert contents(data_dir) == before
