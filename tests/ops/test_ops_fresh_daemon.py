"""A real daemon that has done nothing yet: its replay starts where the recording ends (no
cycle, no order), on market data in its data directory without BTC's hourly candles. /metrics
shows every known labelled series at 0; the public /health says what is missing naming the
file's place relative to the data directory, while /status, behind the token, keeps the path."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from daemon_harness import Daemon, eventually
from ops_builders import TOKEN, Answer, Receiver, get, status_url
from prometheus_client.parser import text_string_to_metric_families

from quantum_trader.domain import ExitReason
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.ops.known_labels import verdict_labels

pytestmark = pytest.mark.slow  # the real CLI in a subprocess
SAMPLE_END = datetime(2025, 12, 1, tzinfo=UTC)  # the bundled sample's last instant
BTC_HOURLY = "BTC_USDT_USDT-1h-futures.feather"  # the global regime's input, left out
# Every exit reason but TRAILING (a stop moved), from the enum the keeper books them by, so a
# new one cannot be left out (FILL_OFF_PLAN was); and every error class of the exchange port.
CLOSING_REASONS = [r.value for r in ExitReason if r is not ExitReason.TRAILING]
EXCHANGE_ERRORS = [
    "RetryLater",
    "RateLimited",
    "IpBanned",
    "OperatorActionRequired",
    "OrderRejected",
    "OrderStateUnknown",
    "MarketDataError",
]
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True, slots=True)
class Fresh:
    daemon: Daemon
    url: str


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    data_dir = tmp_path_factory.mktemp("fresh")
    market = data_dir / "market"  # where download-data writes: chosen over the sample
    market.mkdir()
    for recorded in bundled_sample_dir().iterdir():
        if recorded.suffix in (".feather", ".json") and recorded.name != BTC_HOURLY:
            (market / recorded.name).symlink_to(recorded)
    receiver = Receiver()
    daemon = Daemon.start(
        data_dir,
        QT_MARKET__REPLAY_START=SAMPLE_END.isoformat(),
        QT_SERVER__TOKEN=TOKEN,
        QT_NOTIFY__WEBHOOK_URL=f"{receiver.url}/hook",
    )
    try:
        yield Fresh(daemon, status_url(daemon))
    finally:
        daemon.stop(signal.SIGTERM)
        receiver.close()


def scrape(fresh: Fresh) -> Series:
    text = get(f"{fresh.url}/metrics", TOKEN).body.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def at(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def test_a_fresh_daemon_shows_every_known_labelled_series_at_zero(fresh: Fresh) -> None:
    series = scrape(fresh)
    assert not fresh.daemon.logged_so_far("cycle_completed")  # nothing has happened yet
    decisions = [key for key in series if key[0] == "qt_decisions_total"]
    assert len(decisions) == len(verdict_labels()) > 60
    for gate, reason, approved in verdict_labels():
        assert at(series, "qt_decisions_total", gate=gate, reason=reason, approved=approved) == 0
    for kind in ("MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"):
        for outcome in ("filled", "accepted", "rejected", "unknown"):
            assert at(series, "qt_orders_total", kind=kind, outcome=outcome) == 0
    for side in ("BUY", "SELL"):
        assert at(series, "qt_fills_total", side=side) == 0
    for reason in CLOSING_REASONS:
        assert at(series, "qt_trades_closed_total", reason=reason) == 0
    for error in EXCHANGE_ERRORS:
        assert at(series, "qt_errors_total", error=error, where="exchange") == 0
    for loop, interval_s in (("executor", 30), ("monitor", 5), ("heartbeat", 60)):
        assert at(series, "qt_loop_overruns_total", loop=loop) == 0
        assert at(series, "qt_loop_interval_seconds", loop=loop) == interval_s
    for outcome in ("failed", "dropped"):
        assert at(series, "qt_notifications_total", channel="webhook", outcome=outcome) == 0
    assert at(series, "qt_notifications_total", channel="webhook", outcome="sent") is not None
    for closed in ("cap", "timeout"):
        assert at(series, "qt_status_connections_closed_total", reason=closed) == 0
    assert at(series, "qt_status_connections") == 1  # the scrape's own


def test_public_health_names_a_data_dir_file_relative_to_it_and_status_keeps_the_path(
    fresh: Fresh,
) -> None:
    def with_problems() -> Answer | None:
        answer = get(f"{fresh.url}/health")
        return answer if answer.json()["problems"] else None

    answer = eventually(with_problems, 30, "the first health sample's problems")
    assert answer.status == 200  # DEGRADED
    data_dir = fresh.daemon.data_dir
    for absolute in (str(data_dir), str(data_dir.resolve())):
        assert absolute not in answer.body.decode()
    (problem,) = answer.json()["problems"]
    assert problem.startswith("global regime: 0 of 200 BTC daily closes in data_dir/market;")
    assert "download-data --symbols BTC/USDT:USDT --timeframe 1h" in problem
    (full,) = get(f"{fresh.url}/status", TOKEN).json()["health"]["problems"]
    assert f"in {data_dir / 'market'};" in full
    assert get(f"{fresh.url}/status").status == 401
