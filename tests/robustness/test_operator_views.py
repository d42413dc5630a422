"""`positions`, `trades` and `status` with `--json`, on the data directory the real daemon left
(an open position with its stop): one JSON document on stdout, stable keys, Decimals as
strings, and the futures basics of each position (mark, unrealized PnL, leverage, isolated
margin, estimated liquidation price)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from daemon_harness import DATABASE, cli
from damage_fixtures import data_dir, stopped_daemon_template

from quantum_trader.domain import Order, OrderKind, OrderRequest, OrderSide
from quantum_trader.gates.governor import SafetyGovernor
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.orders import INTENTS
from quantum_trader.ops.governor_keeper import STATE_KEY
from quantum_trader.ops.operator_view import MARKS_FILE, marks_document
from quantum_trader.storage.sqlite import SqliteRepository

__all__ = ["data_dir", "stopped_daemon_template"]
MMR = Decimal("0.005")  # server.maintenance_margin_rate's default
EIGHT = Decimal("1e-8")
PAUSED_AT = datetime(2025, 9, 12, 6, 5, tzinfo=UTC)


def as_json(data_dir: Path, *args: str) -> dict[str, Any]:
    done = cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout is one document
    assert isinstance(document, dict)
    return document


def positions_in(data_dir: Path) -> list[tuple[str, str, Decimal, Decimal, int]]:
    import sqlite3

    with sqlite3.connect(data_dir / DATABASE) as conn:
        rows = conn.execute(
            "SELECT symbol, side, quantity, entry_price, leverage FROM positions ORDER BY symbol"
        ).fetchall()
    conn.close()
    return [(s, side, Decimal(q), Decimal(e), int(lev)) for s, side, q, e, lev in rows]


def test_positions_json_carries_mark_upnl_leverage_margin_and_liquidation(data_dir: Path) -> None:
    held = positions_in(data_dir)
    assert held, "the template holds an open position"
    marks = {symbol: (entry * Decimal("1.01")).quantize(EIGHT) for symbol, _, _, entry, _ in held}
    as_of = datetime(2025, 9, 12, 6, tzinfo=UTC)
    (data_dir / MARKS_FILE).write_text(marks_document(as_of, datetime.now(UTC), marks))

    document = as_json(data_dir, "positions")
    assert set(document) == {"positions", "marks", "liquidation_price_basis"}
    assert document["marks"]["as_of"] == as_of.isoformat()
    assert "maintenance_margin_rate=0.005" in document["liquidation_price_basis"]
    rows = document["positions"]
    assert [r["symbol"] for r in rows] == [symbol for symbol, *_ in held]
    for row, (_, side, quantity, entry, leverage) in zip(rows, held, strict=True):
        for key in (
            "quantity",
            "entry_price",
            "mark_price",
            "unrealized_pnl_usdt",
            "margin_usdt",
            "liquidation_price",
            "stop_price",
            "take_profit_price",
        ):
            assert isinstance(row[key], str), key  # Decimals as strings
        sign = 1 if side == "LONG" else -1
        mark = marks[row["symbol"]]
        assert row["side"] == side
        assert row["leverage"] == leverage
        assert Decimal(row["mark_price"]) == mark
        assert Decimal(row["unrealized_pnl_usdt"]) == ((mark - entry) * quantity * sign).quantize(
            EIGHT
        )
        assert Decimal(row["margin_usdt"]) == (quantity * entry / leverage).quantize(EIGHT)
        inverse = 1 / Decimal(leverage)
        liquidation = (
            entry * (1 - inverse) / (1 - MMR) if sign > 0 else entry * (1 + inverse) / (1 + MMR)
        )
        assert Decimal(row["liquidation_price"]) == liquidation.quantize(EIGHT)
        assert row["protected"] is True
        assert row["stop_order_id"]

    text = cli(data_dir, "positions")
    assert text.returncode == 0, text.stderr
    for column in ("mark", "uPnL", "lev", "margin", "liq. (est.)"):
        assert column in text.stdout, column


def test_a_mark_written_before_the_position_opened_is_not_shown_as_its_mark(
    data_dir: Path,
) -> None:
    """marks.json from before the entry (an earlier position's on the symbol, hours old at
    600x): was the position's mark and unrealized PnL; now null until the next heartbeat."""
    import sqlite3

    with sqlite3.connect(data_dir / DATABASE) as conn:
        (opened,) = conn.execute("SELECT min(opened_at) FROM positions").fetchone()
    conn.close()
    before = datetime.fromisoformat(opened) - timedelta(hours=3)
    earlier = {symbol: entry / 2 for symbol, _, _, entry, _ in positions_in(data_dir)}
    (data_dir / MARKS_FILE).write_text(marks_document(before, datetime.now(UTC), earlier))
    for document in (
        as_json(data_dir, "positions")["positions"],
        as_json(data_dir, "status")["open_positions"],
    ):
        assert document
        for row in document:
            assert row["mark_price"] is None
            assert row["unrealized_pnl_usdt"] is None


def test_positions_json_without_marks_says_so_with_nulls(data_dir: Path) -> None:
    (data_dir / MARKS_FILE).unlink(missing_ok=True)
    document = as_json(data_dir, "positions")
    assert document["marks"] is None
    assert document["positions"]
    for row in document["positions"]:
        assert row["mark_price"] is None
        assert row["unrealized_pnl_usdt"] is None
        assert Decimal(row["margin_usdt"]) > 0
        assert Decimal(row["liquidation_price"]) > 0


def test_status_shows_the_daemon_a_pause_and_blocked_symbols(data_dir: Path) -> None:
    blocked_id = asyncio.run(_leave_an_unsettled_order(data_dir / DATABASE))
    asyncio.run(_pause(data_dir / DATABASE))
    document = as_json(data_dir, "status")
    assert set(document) == {
        "daemon",
        "database",
        "equity",
        "simulated_time",
        "trading",
        "governor",
        "governor_events",
        "open_positions",
        "marks",
        "liquidation_price_basis",
        "closed_trades",
        "blocked_symbols",
        "operator_requests",
        "analytics",
        "decisions",
    }
    daemon = document["daemon"]
    assert daemon["running"] is False
    assert isinstance(daemon["heartbeat_age_s"], float)
    trading = document["trading"]
    assert trading["state"] == "REDUCING"
    detail = "paused by desk: maintenance"
    assert trading["paused"] == {"since": PAUSED_AT.isoformat(), "detail": detail}
    unsettled = f"order {blocked_id} unsettled since 2025-09-12T01:00:00+00:00"
    assert trading["why"] == [
        f"PAUSED since {PAUSED_AT.isoformat()} (paused by desk: maintenance): no new "
        "entries, open positions still managed; `quantum-trader resume` ends it",
        f"no entry on ETH/USDT:USDT until the keeper settles it: {unsettled}",
    ]
    assert document["blocked_symbols"] == {"ETH/USDT:USDT": unsettled}
    assert document["open_positions"]
    assert document["operator_requests"] == []
    assert all({"gate", "reason", "count"} == set(d) for d in document["decisions"])

    text = " ".join(w for w in cli(data_dir, "status").stdout.split() if w != "│")
    assert f"blocked symbols ETH/USDT:USDT: order {blocked_id} unsettled" in text
    assert f"entries PAUSED since {PAUSED_AT.isoformat()} (paused by desk: maintenance)" in text


async def _pause(database: Path) -> None:
    """The governor's state as the daemon saves it after `pause --reason maintenance`."""
    governor = SafetyGovernor(GovernorSettings())
    governor.pause(PAUSED_AT, "desk", "paused by desk: maintenance")
    repository = await SqliteRepository.open(database)
    try:
        await repository.save_state(*STATE_KEY, governor.state.to_dict())
    finally:
        await repository.close()


async def _leave_an_unsettled_order(database: Path) -> str:
    """An entry of ours whose outcome is unknown, as the keeper records one before sending."""
    now = datetime(2025, 9, 12, 1, tzinfo=UTC)
    client_id = "qt-e-test-unsettled"
    request = OrderRequest(
        client_id, "ETH/USDT:USDT", OrderSide.BUY, OrderKind.MARKET, Decimal("0.01")
    )
    repository = await SqliteRepository.open(database)
    try:
        intent = Intent(Order.pending(request, now), now)
        await repository.save_state(INTENTS, client_id, intent.extra_to_dict())
        await repository.save_order(intent.order)
    finally:
        await repository.close()
    return client_id


def test_trades_json_is_one_document_with_decimal_strings(data_dir: Path) -> None:
    document = as_json(data_dir, "trades")
    assert document["database"].endswith(DATABASE)
    assert isinstance(document["trades"], list)
    for trade in document["trades"]:
        assert isinstance(trade["pnl_usdt"], str)
        assert isinstance(trade["r_multiple"], float)


def test_trades_refuses_a_limit_beyond_a_million_in_one_line(data_dir: Path) -> None:
    """Was: `--limit 9223372036854775808` ended in an OverflowError traceback."""
    for limit in ("9223372036854775808", "1000001", "0"):
        done = cli(data_dir, "trades", "--limit", limit)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"error: --limit: a number of trades from 1 to 1,000,000; got {limit}"
        ]
    assert cli(data_dir, "trades", "--limit", "1000000").returncode == 0


def test_a_database_that_is_no_regular_file_is_named_as_such(tmp_path: Path) -> None:
    """Was: `no database at X` for a FIFO, /dev/null or a symbolic link loop."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to("loop")
    for given in ("fifo", "loop", "/dev/null"):
        for command in ("status", "positions", "trades"):
            done = cli(tmp_path, command, "--db", given)
            assert done.returncode == 1
            assert done.stderr.strip().splitlines() == [
                f"error: {given} is not a regular file, so not a database: check --db"
            ]
