"""The hand-trading campaign's check of entries of ours while the stand-in holds the symbol
(by_hand_check.py `entries_beside_an_open`), since the person opens positions by hand on
symbols nothing holds: an entry the stand-in received beside a position a person opened is
excused only until the keeper acted on that symbol (a stop of ours placed, or tried and
answered by a fault) — before, its books could not hold the position (KEEPER.md, "Entries":
refused while the books hold the symbol); after, the entry broke the rule as before. And the
person's sizes (by_hand_person.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from by_hand_check import (
    HandOutcome,
    closes_by_hand,
    entries_beside_an_open,
    hand_problems,
    raced_closes,
)
from by_hand_person import _quantity, opening_quantity
from campaign import Outcome, standin_state
from campaign_watch import Watch, count_span
from loopback.engine import Engine

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ClosedTrade, ExitReason, Fill, OrderSide, Position, Side
from quantum_trader.keeper.round_trip import replay

MARKET, SYMBOL = "BNBUSDT", "BNB/USDT:USDT"
ENTRY = "qt-e-BNB-mhgbe4gv-1.1"
STOP = "qt-s-BNB-mhgbe4gv-1.2"


def market(side: str, quantity: str, client_id: str) -> dict[str, str]:
    return {"symbol": MARKET, "side": side, "type": "MARKET", "quantity": quantity,
            "newClientOrderId": client_id}  # fmt: skip


def our_stop(engine: Engine) -> None:
    """A reduce-only stop of ours under the long held."""
    trigger = str(engine.state.mark(MARKET) * Decimal("0.9"))
    engine.place_algo_order(
        {"symbol": MARKET, "side": "SELL", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
         "quantity": "3", "triggerPrice": f"{Decimal(trigger):.2f}", "reduceOnly": "true",
         "clientAlgoId": STOP}
    )  # fmt: skip


def outcome(engine: Engine, faults_on: list[tuple[int, str, str, str]]) -> HandOutcome:
    """The run as the watcher saw it: our entry received while the symbol was held."""
    watch = Watch(entries=1, entries_while_holding=[ENTRY])
    ran = Outcome(watch, {}, {}, [], [], [], 0)
    return HandOutcome(
        ran, [], [], [], [], [], engine.state, [], 20.0, 60.0, faults_on=faults_on
    )  # fmt: skip


def test_an_entry_before_the_keeper_acted_on_a_position_opened_by_hand_is_excused() -> None:
    engine = Engine(standin_state(32000))
    engine.place_order(market("BUY", "3", "web_32000_4"))
    engine.place_order(market("BUY", "2", ENTRY))
    result = outcome(engine, [])
    assert entries_beside_an_open(result) == {ENTRY}
    assert not [p for p in hand_problems(32000, result) if "entries while" in p]


def test_an_entry_after_a_stop_of_ours_on_the_opened_position_is_not_excused() -> None:
    """The keeper had adopted the position (its stop placed): its books held the symbol."""
    engine = Engine(standin_state(32000))
    engine.place_order(market("BUY", "3", "web_32000_4"))
    our_stop(engine)
    engine.place_order(market("BUY", "2", ENTRY))
    result = outcome(engine, [])
    assert entries_beside_an_open(result) == set()
    assert [p for p in hand_problems(32000, result) if "entries while" in p]


def test_an_entry_after_a_stop_of_ours_a_fault_answered_is_not_excused() -> None:
    engine = Engine(standin_state(32000))
    engine.place_order(market("BUY", "3", "web_32000_4"))
    refused_ms = engine.state.now_ms
    engine.place_order(market("BUY", "2", ENTRY))
    faults = [(refused_ms, MARKET, "POST", "/fapi/v1/algoOrder")]
    assert entries_beside_an_open(outcome(engine, faults)) == set()


def test_an_entry_beside_a_position_an_entry_of_ours_opened_is_not_excused() -> None:
    """Not opened by hand: what the fault campaign's check forbids (one decision, one entry)."""
    engine = Engine(standin_state(32000))
    engine.place_order(market("BUY", "3", "qt-e-BNB-mhgbe4gv-1.0"))
    engine.place_order(market("BUY", "2", ENTRY))
    assert entries_beside_an_open(outcome(engine, [])) == set()


def test_the_persons_sizes() -> None:
    """An addition is a share of the position, a step at least; an open about our entries'
    notional (1,400–2,600 USDT at the mark), a step at least."""
    state = standin_state(32000)
    assert _quantity("add", Decimal("5.06"), 0.5, state, MARKET) == Decimal("2.53")
    assert _quantity("add", Decimal("0.01"), 0.2, state, MARKET) == Decimal("0.01")
    for share in (0.2, 0.8):
        quantity = opening_quantity(share, state, MARKET)
        assert Decimal(1390) <= quantity * state.mark(MARKET) <= Decimal(2600)
        assert quantity % Decimal("0.01") == 0


def test_a_span_still_bare_when_the_watching_stops_is_counted() -> None:
    """A position opened by hand and never protected: its span never ended, and was never
    counted (the watcher counted a span only once the position was covered or flat). Now
    the watcher counts it at its stop as far as it went; here the counting, on ticks planned
    after the sample before the span (3 of them) and not those before."""
    watch = Watch()
    opened_ms = 1_762_003_869_101
    planned = [opened_ms - 4_000, opened_ms + 1_000, opened_ms + 6_000, opened_ms + 11_000]
    count_span(watch, MARKET, (opened_ms + 500, 0, opened_ms - 500), opened_ms + 12_000, planned)
    assert watch.unprotected_ticks == {MARKET: 3}
    assert watch.bare_spans == [(MARKET, opened_ms + 500, opened_ms + 12_000, planned[1:])]


def test_an_addition_by_hand_between_reductions_keeps_the_averages_the_keeper_replays() -> None:
    """A close by hand after a reduction and an addition by hand: `exit_prices` averages the
    person's reductions since the position opened, additions between them counted in no
    reset — as the keeper's replay of trades that do not add up books it (KEEPER.md "Also when
    the newest trades do not add up": an addition by hand then a close; its leg's exit price
    is the average of all its reductions), and as a tick that booked the reduction before
    the addition books the close alone (the last price)."""
    state = standin_state(32000)
    engine = Engine(state)
    prices = {}
    for side, quantity, client_id in (
        ("BUY", "3", ENTRY), ("SELL", "1", "web_32000_1"), ("BUY", "2", "web_32000_2"),
        ("SELL", "4", "web_32000_3"),
    ):  # fmt: skip
        state.now_ms += 7_000  # a new mark each: prices apart
        prices[client_id] = Decimal(
            engine.place_order(market(side, quantity, client_id))["avgPrice"]
        )
    [close] = closes_by_hand(state)
    sold = (prices["web_32000_1"] + 4 * prices["web_32000_3"]) / 5
    assert close.exit_prices == (prices["web_32000_3"], sold)
    at = utc_from_ms(state.now_ms)
    position = Position(
        SYMBOL, Side.LONG, Decimal(3), prices[ENTRY], 3, prices[ENTRY] - 10, prices[ENTRY] + 10,
        at - timedelta(minutes=1), ENTRY, prices[ENTRY] - 10, Decimal(3),
    )  # fmt: skip
    fills = [
        Fill(str(t["id"]), "", SYMBOL, OrderSide(t["side"]), Decimal(t["qty"]),
             Decimal(t["price"]), Decimal(t["commission"]), utc_from_ms(t["time"]))
        for t in state.trades[1:]
    ]  # fmt: skip
    replayed = replay(position, None, fills, None)
    assert replayed is not None
    assert replayed.ours.exit_price == sold  # in `exit_prices`, not the last alone


def raced(entry_side: str, entry_quantity: str) -> HandOutcome:
    """The person opens a long of 3 by hand; our entry, before the keeper saw it, meets it."""
    engine = Engine(standin_state(32035))
    engine.place_order(market("BUY", "3", "web_32035_8"))
    engine.state.now_ms += 61_000  # a tick stalled on a lost answer, as in seed 32035
    engine.place_order(market(entry_side, entry_quantity, ENTRY))
    return outcome(engine, [])


def our_short_closed_at(result: HandOutcome, price: Decimal) -> HandOutcome:
    """The books: our short of 2 (its entry's answer) closed MANUAL at `price`."""
    at, zero = utc_from_ms(result.standin.now_ms), Decimal(0)
    entry = Decimal(result.standin.trades[-1]["price"])
    trade = ClosedTrade(
        SYMBOL, Side.SHORT, Decimal(2), entry, price, at, at, ExitReason.MANUAL, zero, zero,
        zero, None, ENTRY,
    )  # fmt: skip
    return replace(result, closed=[trade])


def test_our_entry_against_a_position_opened_by_hand_is_booked_at_the_persons_trade() -> None:
    """Seed 32139: our entry's position booked closed MANUAL at the person's opening trade
    (the account's result, whichever came first) passes (it failed before: a MANUAL close
    with no close by hand); seed 32035: closed at a mark (here 0.5 % off) fails, named as
    our entry against the position opened by hand."""
    result = raced("SELL", "2")
    [close] = raced_closes(result, {ENTRY})
    person = Decimal(result.standin.trades[0]["price"])
    assert (close.exit_prices, close.held_before, close.raced) == ((person,), Decimal(-2), ENTRY)
    assert hand_problems(32035, our_short_closed_at(result, person)) == []
    unmatched, manual = hand_problems(32035, our_short_closed_at(result, person * Decimal("0.995")))
    assert f"our entry {ENTRY} against the position opened by hand" in unmatched
    assert "booked MANUAL at" in manual


def test_our_entry_that_adds_to_or_crosses_a_position_opened_by_hand_closes_nothing() -> None:
    """Added to it (grown, seed 32051), or taken across zero (ours held, reduced by the
    person's trade): no close is booked, none expected."""
    assert raced_closes(raced("BUY", "2"), {ENTRY}) == []
    assert raced_closes(raced("SELL", "4"), {ENTRY}) == []
