"""Risk guard (SPEC §4.4): each check just inside and just outside its threshold."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from gate_builders import NOW, market, portfolio, position, rules, sized_order
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import (
    LeverageBracket,
    LotSize,
    MarketView,
    PortfolioView,
    Position,
    ReasonCode,
    Side,
    SizedOrder,
    Verdict,
)
from quantum_trader.gates.chain import ApprovalChain
from quantum_trader.gates.risk_guard import RiskGuard, required_margin_usdt, risk_at_stop_usdt
from quantum_trader.gates.settings import RiskGuardSettings

GUARD = RiskGuard(RiskGuardSettings())
D = Decimal


def review(
    order: SizedOrder,
    account: PortfolioView | None = None,
    view: MarketView | None = None,
    guard: RiskGuard = GUARD,
) -> Verdict:
    return guard.review_order(order, account or portfolio(), view or market(), NOW)


def test_a_sound_order_is_approved() -> None:
    verdict = review(sized_order())
    assert verdict.approved
    assert verdict.reason is ReasonCode.APPROVED


def test_a_sound_short_is_approved() -> None:
    order = sized_order(side=Side.SHORT, stop="103", take_profit="94")
    assert review(order).approved


def test_unknown_symbol_is_denied() -> None:
    verdict = review(sized_order(symbol="NOPE/USDT:USDT"))
    assert verdict.reason is ReasonCode.UNKNOWN_SYMBOL


def test_stop_on_the_wrong_side_is_invalid() -> None:
    assert review(sized_order(stop="101")).reason is ReasonCode.INVALID_ORDER
    assert review(sized_order(take_profit="99")).reason is ReasonCode.INVALID_ORDER


def test_balance_minimum() -> None:
    small = sized_order(quantity="0.2", stop="99", take_profit="102")
    assert review(small, portfolio(equity="100")).approved
    denied = review(small, portfolio(equity="99.99"))
    assert denied.reason is ReasonCode.BALANCE_BELOW_MINIMUM


def test_leverage_cap_from_settings_and_from_the_market() -> None:
    assert review(sized_order(leverage=10)).approved
    assert review(sized_order(leverage=11)).reason is ReasonCode.LEVERAGE_TOO_HIGH
    view = market(market_rules={"ETH/USDT:USDT": rules(max_leverage=5)})
    assert review(sized_order(leverage=5), view=view).approved
    assert review(sized_order(leverage=6), view=view).reason is ReasonCode.LEVERAGE_TOO_HIGH


def test_free_balance_must_cover_margin_with_buffer() -> None:
    order = sized_order()
    needed = required_margin_usdt(order) * Decimal("1.1")
    assert review(order, portfolio(free=str(needed))).approved
    short = review(order, portfolio(free=str(needed - Decimal("0.01"))))
    assert short.reason is ReasonCode.INSUFFICIENT_FREE_BALANCE


def test_margin_per_trade_cap() -> None:
    at_cap = sized_order(quantity="15", leverage=1)
    assert review(at_cap).approved
    over = sized_order(quantity="15.001", leverage=1)
    assert review(over).reason is ReasonCode.MARGIN_PER_TRADE_EXCEEDED


def test_notional_exposure_after_the_trade() -> None:
    held = position("BTC/USDT:USDT", quantity="140", entry="100")
    account = portfolio(positions=[held])
    assert review(sized_order(quantity="10"), account).approved
    over = review(sized_order(quantity="10.001"), account)
    assert over.reason is ReasonCode.NOTIONAL_EXPOSURE_EXCEEDED


def test_open_positions_outer_cap() -> None:
    def held(n: int) -> list[Position]:
        return [position(f"S{i}/USDT:USDT", quantity="0.1") for i in range(n)]

    assert review(sized_order(), portfolio(positions=held(14))).approved
    full = portfolio(positions=held(15))
    assert review(sized_order(), full).reason is ReasonCode.MAX_OPEN_POSITIONS
    adding = [*held(14), position("ETH/USDT:USDT", quantity="0.1")]
    assert review(sized_order(), portfolio(positions=adding)).approved


def test_risk_at_stop_cap() -> None:
    at_cap = sized_order(quantity="100", stop="98", take_profit="104", leverage=10)
    assert risk_at_stop_usdt(at_cap) == Decimal(200)
    assert review(at_cap).approved
    over = sized_order(quantity="100.001", stop="98", take_profit="104", leverage=10)
    assert review(over).reason is ReasonCode.RISK_PER_TRADE_EXCEEDED
    stated = sized_order(expected_loss="200.01")
    assert review(stated).reason is ReasonCode.RISK_PER_TRADE_EXCEEDED


def test_reward_risk_floor() -> None:
    assert review(sized_order(take_profit="104.5")).approved
    low = review(sized_order(take_profit="104.49"))
    assert low.reason is ReasonCode.REWARD_RISK_TOO_LOW


def test_minimum_quantity() -> None:
    view = market(market_rules={"ETH/USDT:USDT": rules(min_quantity="0.01", min_notional="0.5")})
    assert review(sized_order(quantity="0.01"), view=view).approved
    low = review(sized_order(quantity="0.009"), view=view)
    assert low.reason is ReasonCode.BELOW_MIN_QUANTITY


def test_a_market_entry_above_the_market_maximum_is_refused() -> None:
    # An entry is a MARKET order: Binance refuses it above MARKET_LOT_SIZE maxQty (-4005).
    capped = replace(rules(), market_lot=LotSize(D("0.001"), D("0.001"), D("10")))
    view = market(market_rules={"ETH/USDT:USDT": capped})
    assert review(sized_order(quantity="10"), view=view).approved
    above = review(sized_order(quantity="10.001"), view=view)
    assert above.reason is ReasonCode.ABOVE_MAX_QUANTITY
    assert above.detail == "quantity 10.001 > market order maximum 10 (MARKET_LOT_SIZE)"
    lot_only = market(market_rules={"ETH/USDT:USDT": replace(rules(), max_quantity=D("9"))})
    assert review(sized_order(quantity="10"), view=lot_only).reason is (
        ReasonCode.ABOVE_MAX_QUANTITY  # no MARKET_LOT_SIZE: LOT_SIZE's maximum
    )


def test_an_entry_off_the_market_order_step_is_refused_naming_the_filter() -> None:
    # The probe's SOL: LOT_SIZE step 0.01, MARKET_LOT_SIZE step 1 (Binance: -1111 or -4003).
    sol = replace(rules(step="0.01", min_quantity="0.01"), market_lot=LotSize(D(1), D(1), None))
    view = market(market_rules={"ETH/USDT:USDT": sol})
    assert review(sized_order(quantity="10"), view=view).approved
    off = review(sized_order(quantity="9.5"), view=view)
    assert off.reason is ReasonCode.BAD_PRECISION
    assert off.detail == "quantity 9.5 not a multiple of the market order step 1 (MARKET_LOT_SIZE)"


def test_an_entry_below_the_market_order_minimum_is_refused_naming_the_filter() -> None:
    # The probe's ETH: LOT_SIZE minimum 0.001, MARKET_LOT_SIZE minimum 0.5.
    eth = replace(rules(), market_lot=LotSize(D("0.5"), D("0.001"), None))
    view = market(market_rules={"ETH/USDT:USDT": eth})
    assert review(sized_order(quantity="0.5"), view=view).approved
    low = review(sized_order(quantity="0.499"), view=view)
    assert low.reason is ReasonCode.BELOW_MIN_QUANTITY
    assert low.detail == "quantity 0.499 < the market order minimum 0.5 (MARKET_LOT_SIZE)"


def test_minimum_notional() -> None:
    assert review(sized_order(quantity="0.2")).approved
    assert review(sized_order(quantity="0.199")).reason is ReasonCode.BELOW_MIN_NOTIONAL


def test_precision_of_quantity_and_trigger_prices() -> None:
    assert review(sized_order(quantity="10.0005")).reason is ReasonCode.BAD_PRECISION
    assert review(sized_order(stop="97.005")).reason is ReasonCode.BAD_PRECISION
    assert review(sized_order(take_profit="106.001")).reason is ReasonCode.BAD_PRECISION


def test_thresholds_follow_settings() -> None:
    strict = RiskGuard(RiskGuardSettings(max_risk_per_trade=0.002))
    at_cap = sized_order(quantity="10", stop="98", take_profit="104")
    assert review(at_cap, guard=strict).approved
    over = sized_order(quantity="10.001", stop="98", take_profit="104")
    denied = review(over, guard=strict)
    assert denied.reason is ReasonCode.RISK_PER_TRADE_EXCEEDED


@settings(max_examples=200, deadline=None)
@given(
    quantity=st.decimals("0.001", "400", places=3),
    stop_distance=st.decimals("0.01", "20", places=2),
    reward=st.decimals("0.01", "40", places=2),
    leverage=st.integers(1, 20),
    equity=st.decimals("50", "20000", places=2),
    side=st.sampled_from(Side),
)
def test_an_approved_order_respects_every_cap(
    quantity: Decimal,
    stop_distance: Decimal,
    reward: Decimal,
    leverage: int,
    equity: Decimal,
    side: Side,
) -> None:
    stop = Decimal(100) - stop_distance * side.sign
    take_profit = Decimal(100) + reward * side.sign
    order = sized_order(
        side=side,
        quantity=str(quantity),
        stop=str(stop),
        take_profit=str(take_profit),
        leverage=leverage,
    )
    account = portfolio(equity=str(equity))
    if not review(order, account).approved:
        return
    assert equity >= 100
    assert leverage <= 10
    assert required_margin_usdt(order) <= equity * Decimal("0.15")
    assert account.free_usdt >= required_margin_usdt(order) * Decimal("1.1")
    assert order.quantity * order.entry_price <= equity * Decimal("1.5")
    assert risk_at_stop_usdt(order) <= equity * Decimal("0.02")
    assert reward / stop_distance >= Decimal("1.5")


def test_leverage_cap_from_the_exchanges_bracket_for_the_notional() -> None:
    brackets = (
        LeverageBracket(8, Decimal(0), Decimal(500)),
        LeverageBracket(4, Decimal(500), Decimal(2000)),
        LeverageBracket(2, Decimal(2000), Decimal(5000)),
    )
    bracketed = replace(rules(max_leverage=8), leverage_brackets=brackets)
    view = market(market_rules={"ETH/USDT:USDT": bracketed})
    # 4 ETH at 100 = 400 USDT: the first bracket allows 8x; 10 ETH = 1000 USDT only 4x.
    assert review(sized_order(quantity="4", leverage=5), view=view).approved
    assert review(sized_order(quantity="10", leverage=4), view=view).approved
    denied = review(sized_order(quantity="10", leverage=5), view=view)
    assert denied.reason is ReasonCode.LEVERAGE_TOO_HIGH
    assert bracketed.max_leverage_for(Decimal(5000)) == 0  # beyond the last cap: none
    beyond = review(sized_order(quantity="60", leverage=1), view=view)
    assert beyond.reason is ReasonCode.LEVERAGE_TOO_HIGH
    # Was "leverage 1 > 0": true, but it did not say the notional was what no leverage allows.
    assert beyond.detail == "notional 6000.00 is beyond the last leverage bracket's cap 5000"


def test_the_chain_gives_the_keeper_the_risk_guards_cap_on_risk_at_the_stop() -> None:
    """`max_risk_per_trade` of the equity, the figure its check refuses above (the keeper
    checks an entry's fill against it: keeper/fill_check.py); None with no risk guard."""
    guard = RiskGuard(RiskGuardSettings(max_risk_per_trade=0.02))
    account = portfolio(equity="10000")
    assert ApprovalChain([], [guard]).risk_cap_usdt(account) == Decimal("200.00")
    assert ApprovalChain([], []).risk_cap_usdt(account) is None
