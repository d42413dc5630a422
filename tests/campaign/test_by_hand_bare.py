"""The hand-trading campaign's bound on a position without our stop (by_hand_check.py
`allowed_ticks`), on spans two seeds of 2026-12-04 held to too few ticks:

- seed 30726: a flip by hand whose ACCOUNT_UPDATE the stand-in never delivered, seen by the
  check of positions 19.8 s later (within `keeper.rest_position_check_s`, 20 s, as designed),
  through 7 ticks: the events of our stops the flip left on the wrong side (triggered,
  rejected) woke ticks between the 5 s ones. The check counted the REST check's 20 s as 4
  ticks: a bound in time is the ticks planned within it;
- seed 30745: the stop placed by each of the first two ticks after a flip answered 503
  (unprocessed) by the stand-in's faults, the third's accepted: each tick tried. A tick
  whose placement a fault answered could not protect; the next tries again;
- seed 30908 (2026-12-04 evening): our stop cancelled by hand 0.64 s after a tick was
  planned, that tick counted as one that could see the cancel (it read the stop there);
- seed 30970 (the same evening): a Retry-After hold after a hidden flip; the ticks planned
  within it sent nothing (no REST check, no stop) and were counted."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, cast

from by_hand_check import STOP_WITHIN_TICKS, HandOutcome, allowed_ticks, covered_apart
from by_hand_person import HandAction, _named
from campaign import standin_state

MARKET = "BTCUSDT"
FLIP_MS = 1_762_004_123_840  # seed 30726's flip by hand
POSITION_CHECK_S, FULL_CHECK_S = 20.0, 60.0


def outcome(
    hidden: list[tuple[int, dict[str, Any]]], faults_on: list[tuple[int, str, str, str]]
) -> HandOutcome:
    nothing = cast(Any, None)
    return HandOutcome(
        nothing, [], [], [], [], [], standin_state(30726), hidden, POSITION_CHECK_S,
        FULL_CHECK_S, faults_on=faults_on,
    )  # fmt: skip


def account_update(market_id: str) -> dict[str, Any]:
    return {"e": "ACCOUNT_UPDATE", "a": {"P": [{"s": market_id, "pa": "0.016"}]}}


def test_a_flip_seen_by_the_check_of_positions_may_take_every_tick_planned_before_it_is_due(
) -> None:  # fmt: skip
    # seed 30726's ticks: woken by our stops' events between the 5 s ones
    offsets = (648, 4_231, 4_610, 9_642, 13_183, 14_628, 19_611)
    planned = [FLIP_MS + o for o in offsets]
    result = outcome([(FLIP_MS, account_update(MARKET))], [])
    start, end = FLIP_MS + 160, FLIP_MS + 19_785
    assert allowed_ticks(result, MARKET, start, end, planned) >= len(planned)
    # at 5 s apart, the check of positions' 20 s are 4 ticks, and 2 more for the stop
    even = [FLIP_MS + 1_000 + 5_000 * i for i in range(8)]
    assert allowed_ticks(result, MARKET, start, end, even) == 4 + STOP_WITHIN_TICKS
    # nothing hidden about it: the design's 2 ticks
    other = outcome([(FLIP_MS, account_update("ETHUSDT"))], [])
    assert allowed_ticks(other, MARKET, start, end, planned) == STOP_WITHIN_TICKS


def test_each_placement_a_fault_answered_on_the_symbol_costs_its_tick() -> None:
    start = FLIP_MS
    planned = [start + 16, start + 60_218, start + 61_239]  # seed 30745's three ticks
    refused = [
        (start + 900, MARKET, "POST", "/fapi/v1/algoOrder"),
        (start + 60_500, MARKET, "POST", "/fapi/v1/algoOrder"),
    ]
    result = outcome([], refused)
    assert allowed_ticks(result, MARKET, start, start + 61_400, planned) == 4
    # a read, or another symbol's order, costs nothing of this one's
    elsewhere = [
        (start + 900, "ETHUSDT", "POST", "/fapi/v1/algoOrder"),
        (start + 900, MARKET, "GET", "/fapi/v1/openAlgoOrders"),
    ]
    result = outcome([], elsewhere)
    assert allowed_ticks(result, MARKET, start, start + 61_400, planned) == STOP_WITHIN_TICKS


def test_a_fault_on_a_request_naming_an_order_of_ours_by_id_alone_is_its_symbols() -> None:
    """A conditional order's cancel and lookup carry no symbol, only the client id (seen:
    faults on them went unattributed, so neither bound counted them)."""
    assert _named({"clientAlgoId": "qt-t-BNB-mhgbe4e6-1.6"}) == "BNBUSDT"
    assert _named({"origClientOrderId": "qt-x-ETH-mhgbe4e6-1.9"}) == "ETHUSDT"
    assert _named({"origClientOrderId": "web_30718_1"}) is None
    assert _named({}) is None


def test_a_span_a_cancel_by_hand_began_counts_the_ticks_planned_after_the_cancel() -> None:
    """Seed 30908: ETH's stop cancelled at 13:29:50.009 (the person saw it covered 20 ms
    before); a tick planned at 13:29:49.371 had read it there; the two planned after the
    cancel saw it gone and placed a new one — the design's 2 ticks, not 3."""
    cancel_ms = 1_762_003_790_009
    cancel = HandAction(
        cancel_ms, "ETHUSDT", "cancel_stop", "web_30908_4", Decimal(0), "canceled",
        covered_ms=cancel_ms - 20, cancelled="qt-s-ETH-mhgbifey-1.c",
    )  # fmt: skip
    planned = [cancel_ms - 638, cancel_ms + 60_442, cancel_ms + 183_648]
    start, end = cancel_ms + 200, cancel_ms + 184_010
    result = replace(outcome([], []), actions=[cancel])
    [(first, last, ticks)] = covered_apart(result, "ETHUSDT", start, end, planned)
    assert ticks == planned[1:]
    assert len(ticks) <= allowed_ticks(result, "ETHUSDT", first, last, ticks)
    # without the cancel (bare for another reason) every tick planned since the sample counts
    [(_, _, every)] = covered_apart(outcome([], []), "ETHUSDT", start, end, planned)
    assert every == planned


def test_each_tick_planned_within_a_retry_after_hold_costs_its_tick() -> None:
    """A flip hidden from the stream, and a 429 whose Retry-After holds the daemon's client
    back over the check of positions: the ticks planned within the hold send nothing."""
    planned = [FLIP_MS + 1_000 + 5_000 * i for i in range(8)]
    hidden = [(FLIP_MS, account_update(MARKET))]
    start, end = FLIP_MS + 160, FLIP_MS + 40_000
    bound = allowed_ticks(outcome(hidden, []), MARKET, start, end, planned)
    held = replace(outcome(hidden, []), holds_ms=[(FLIP_MS + 19_000, FLIP_MS + 30_000)])
    assert allowed_ticks(held, MARKET, start, end, planned) == bound + 2  # at +21 s and +26 s
    # a hold on no tick costs nothing
    idle = replace(outcome(hidden, []), holds_ms=[(FLIP_MS + 2_000, FLIP_MS + 3_000)])
    assert allowed_ticks(idle, MARKET, start, end, planned) == bound
