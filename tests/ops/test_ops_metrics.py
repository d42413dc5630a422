"""Metrics fed from the exchange boundary (the ccxt adapter against the loopback Binance
stand-in): request counts and Binance's own used weight, orders by outcome, fills, errors by
class; stream health, REST-only today; and the labelled series known at start, at 0 until
their first event."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from loopback import LoopbackBinance
from loopback.faults import Fault

import quantum_trader
from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import OrderKind, OrderRequest, OrderSide
from quantum_trader.errors import MarketDataError, OrderRejected
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.ops.known_labels import STOP_ONLY_REASONS, VERDICTS
from quantum_trader.ops.metered import MeteredExchange
from quantum_trader.ops.metrics import Metrics, StreamState

BTC = "BTC/USDT:USDT"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_request_weight_is_binance_own_figure(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    metrics = Metrics()
    exchange.on_request = metrics.on_request
    await exchange.fetch_balance()  # v3/account: weight 5
    await exchange.fetch_mark_prices([BTC])  # premiumIndex of one symbol: weight 1
    await exchange.fetch_positions()  # v2/positionRisk: weight 5
    assert loopback.weight == 11
    assert sample(metrics, "qt_exchange_used_weight_1m") == loopback.weight
    assert sample(metrics, "qt_exchange_requests_total", operation="account") == 2
    assert sample(metrics, "qt_exchange_requests_total", operation="data") == 1


async def test_orders_fills_and_errors_are_counted_at_the_port(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    metrics = Metrics()
    metered = MeteredExchange(exchange, metrics)
    buy = OrderRequest("qteBTC1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal("0.01"))
    loopback.inject(Fault(path="/fapi/v1/order", code=-2019, msg="Margin is insufficient."))
    with pytest.raises(OrderRejected):
        await metered.place_order(buy)
    order = await metered.place_order(OrderRequest("qteBTC2", *_rest(buy)))
    fills = await metered.fetch_fills(BTC, order.client_order_id)
    assert sample(metrics, "qt_orders_total", kind="MARKET", outcome="rejected") == 1
    assert sample(metrics, "qt_orders_total", kind="MARKET", outcome="filled") == 1
    assert sample(metrics, "qt_fills_total", side="BUY") == len(fills) >= 1
    assert sample(metrics, "qt_errors_total", error="OrderRejected", where="exchange") == 1


def _rest(request: OrderRequest) -> tuple[str, OrderSide, OrderKind, Decimal]:
    return request.symbol, request.side, request.kind, request.quantity


class TwoStreams:
    def streams(self) -> Sequence[StreamState]:
        return (StreamState("markPrice", True, 0.4), StreamState("userData", False, None))


def test_stream_health_is_reported_and_none_means_rest_only() -> None:
    assert b"qt_streams 0.0" in Metrics().render()[0]
    text = Metrics(TwoStreams()).render()[0].decode()
    assert "qt_streams 2.0" in text
    assert 'qt_stream_up{stream="markPrice"} 1.0' in text
    assert 'qt_stream_up{stream="userData"} 0.0' in text
    assert 'qt_stream_last_message_age_seconds{stream="markPrice"} 0.4' in text


def test_known_labelled_series_read_zero_before_their_first_event() -> None:
    metrics = Metrics()
    metrics.declare_loops({"executor": 30.0, "monitor": 5.0})
    metrics.declare_channel("webhook")
    metrics.declare_operations(["data", "order"])
    lines = set(metrics.render()[0].decode().splitlines())
    for line in (
        'qt_decisions_total{approved="false",gate="governor",reason="OPERATOR_PAUSED"} 0.0',
        'qt_decisions_total{approved="true",gate="execution",reason="APPROVED"} 0.0',
        'qt_orders_total{kind="STOP_MARKET",outcome="unknown"} 0.0',
        'qt_fills_total{side="SELL"} 0.0',
        'qt_trades_closed_total{reason="PROTECTION_FAILED"} 0.0',
        'qt_errors_total{error="IpBanned",where="exchange"} 0.0',
        'qt_loop_overruns_total{loop="monitor"} 0.0',
        'qt_loop_lag_seconds_count{loop="executor"} 0.0',
        'qt_loop_interval_seconds{loop="executor"} 30.0',
        'qt_notifications_total{channel="webhook",outcome="dropped"} 0.0',
        'qt_exchange_requests_total{operation="order"} 0.0',
    ):
        assert line in lines, line
    assert not any('reason="TRAILING"' in line for line in lines)  # moves a stop, closes nothing
    assert not any('true",gate="signal_filter"' in line for line in lines)  # it never approves


def test_every_reason_code_the_code_gives_is_listed_under_a_gate() -> None:
    """A reason missing from known_labels.VERDICTS would be "No data" until its first verdict."""
    package = Path(quantum_trader.__file__).parent
    vocabulary = {package / "domain" / "enums.py", package / "ops" / "known_labels.py"}
    given = {
        code
        for path in package.rglob("*.py")
        if path not in vocabulary
        for code in re.findall(r"ReasonCode\.([A-Z_]+)", path.read_text())
    }
    listed = {reason.value for reasons in VERDICTS.values() for reason in reasons}
    assert len(given) > 40
    assert given <= listed | {r.value for r in STOP_ONLY_REASONS}, given - listed
    assert not listed & {r.value for r in STOP_ONLY_REASONS}


async def test_a_force_orders_read_is_metered_and_its_failure_counted(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    """Read only for a close booked from the account's trades (keeper/forced.py): two
    requests of weight 20, and a malformed answer one MarketDataError at the port."""
    metrics = Metrics()
    metered = MeteredExchange(exchange, metrics)
    now = utc_from_ms(loopback.state.now_ms)
    assert await metered.fetch_force_orders(BTC, now - timedelta(minutes=5), now) == {}
    assert loopback.weight == 40
    loopback.inject(Fault(path="/fapi/v1/forceOrders", status=200, body='{"rows": []}'))
    with pytest.raises(MarketDataError):
        await metered.fetch_force_orders(BTC, now - timedelta(minutes=5), now)
    assert sample(metrics, "qt_errors_total", error="MarketDataError", where="exchange") == 1
