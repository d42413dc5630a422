"""A closed trade's figures as its row stores them (keeper/booking.py `as_stored`).

An outside probe (2026-12-06) read rows holding our own arithmetic's 28 digits: an exit price
3644.637824519230769230769231 (an average of fills), a PnL ending …99999808. A price with more
than 8 decimals, and a sum, is stored to 8 decimals (an average stays an average, not put on
the tick); what has 8 or fewer — all an exchange reports — is stored as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from test_keeper_properties import SYMBOLS, Harness, sized

from quantum_trader.domain import ClosedTrade, ExitReason, MarketRules, Side
from quantum_trader.keeper.booking import as_stored
from quantum_trader.record import replace

ETH = "ETH/USDT:USDT"
RULES = MarketRules(ETH, Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(1))
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def trade(exit_price: str, pnl: str, entry_price: str = "3600.00") -> ClosedTrade:
    return ClosedTrade(
        symbol=ETH,
        side=Side.LONG,
        quantity=Decimal("0.048"),
        entry_price=Decimal(entry_price),
        exit_price=Decimal(exit_price),
        opened_at=NOW,
        closed_at=NOW,
        exit_reason=ExitReason.SL_HIT,
        pnl_usdt=Decimal(pnl),
        fees_usdt=Decimal("0.1382"),
        funding_usdt=Decimal(0),
        r_multiple=-1.0,
        entry_order_id="e",
    )


def test_our_averages_and_sums_go_to_8_decimals() -> None:
    stored = as_stored(trade("3644.637824519230769230769231", "-2.079999999808"))
    assert str(stored.exit_price) == "3644.63782452"
    assert str(stored.pnl_usdt) == "-2.08000000"
    assert stored.entry_price == Decimal("3600.00")


def test_what_an_exchange_reports_is_stored_as_it_is() -> None:
    """Binance's average price off the tick, its fee and PnL at 8 decimals, a 0E-8."""
    reported = trade("3644.63782451", "-2.07999998", entry_price="3600.5")
    reported = replace(reported, funding_usdt=Decimal("0E-8"))
    assert as_stored(reported) == reported
    assert str(as_stored(reported).entry_price) == "3600.5"


async def test_an_exit_filled_at_two_prices_is_booked_at_its_average_to_8_decimals() -> None:
    """1 of 3 BTC sold at 100, 2 at 100.01: 100.00666… on average; stored as 100.00666667."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.tick(harness.now, rest=True)
    btc = SYMBOLS[0]
    await harness.keeper.enter(sized(btc, Side.LONG, exchange.marks[btc]), harness.now)
    exchange.split_next = Decimal("0.01")
    await harness.keeper.close_all(ExitReason.EMERGENCY, harness.now)

    [closed] = await harness.repository.closed_trades()
    assert closed.exit_price == Decimal("100.00666667")
    assert closed.pnl_usdt == closed.pnl_usdt.quantize(Decimal("1E-8"))
    assert len(str(closed.pnl_usdt).partition(".")[2]) <= 8
