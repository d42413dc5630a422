"""The hand-trading campaign's measure of our stops (by_hand_stops.py), on the stand-in's own
engine: more than one stop of ours open on a symbol, or one open on a symbol holding nothing,
each in the keeper's ticks planned within it, held to its bound; and the stream fault that
drops the events of our stops accepted (loopback/faults.py `drop_new_stops`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from by_hand_check import HandOutcome
from by_hand_stops import FLAT, SEVERAL, stop_problems, stop_spans, stops_summary
from campaign import MONITOR_S, Outcome
from campaign_watch import Watch
from engine_books import MARKET, OurLong
from loopback import payloads
from loopback.faults import RandomStreamFaults
from loopback.state import START_MS

from quantum_trader.keeper.ids import Purpose, is_ours

TICK_MS = round(MONITOR_S * 1000)
T0 = START_MS + 60_000


class Books(OurLong):
    """The engine with a long of ours and its stop far below the mark."""

    order_type, purpose, trigger_factor = "STOP_MARKET", Purpose.STOP, Decimal("0.5")

    def stop(self, ms: int, quantity: str = "0.003") -> str:
        return self.place(ms, quantity)


def outcome(
    books: Books,
    *,
    faults_on: list[tuple[int, str, str, str]] | None = None,
    hidden: list[tuple[int, dict[str, Any]]] | None = None,
) -> HandOutcome:
    """A run whose keeper ticks were planned every 5 s from START_MS + 1 s."""
    ticks = list(range(START_MS + 1_000, books.state.now_ms + 1, TICK_MS))
    watch = Watch(entries=1, sending_ms=ticks)
    return HandOutcome(
        Outcome(watch, {}, {}, [], [], [], 0),
        [], [], [], [], [], books.state, hidden or [], 20.0, 60.0, faults_on=faults_on or [],
    )  # fmt: skip


def problems(result: HandOutcome) -> list[str]:
    return list(stop_problems(1, result))


def test_a_replacement_within_its_tick_is_one_span_of_no_tick_and_passes() -> None:
    books = Books()
    new = books.stop(T0 + 2_000)  # the tick planned at T0 + 1 s places it, then cancels
    books.cancel(books.first, T0 + 2_150)
    books.at(T0 + 60_000)
    spans = stop_spans(books.state, outcome(books).outcome.watch.sending_ms)
    assert [(s.kind, s.length_ms, s.ticks, s.most) for s in spans] == [(SEVERAL, 150, (), 2)]
    assert spans[0].stops == tuple(sorted((books.first, new)))
    assert problems(outcome(books)) == []
    assert "most stops of ours at once 2, several 1 spans, longest 0 ticks 150 ms" in (
        stops_summary(spans)
    )


def test_an_old_stop_cancelled_by_the_next_tick_passes_and_by_the_one_after_fails() -> None:
    books = Books()
    books.stop(T0 + 2_000)
    books.cancel(books.first, T0 + 6_100)  # the tick planned at T0 + 6 s
    books.at(T0 + 60_000)
    assert problems(outcome(books)) == []
    books = Books()
    books.stop(T0 + 2_000)
    books.cancel(books.first, T0 + 11_100)  # the tick planned at T0 + 11 s
    books.at(T0 + 60_000)
    found = problems(outcome(books))
    assert len(found) == 1
    assert "2 stops of ours" in found[0]
    assert "2 ticks planned within" in found[0]
    assert "(at most 1 ticks)" in found[0]
    # a fault on the cancel of the old one, on this symbol: a tick more
    cancel = (T0 + 6_050, MARKET, "DELETE", "/fapi/v1/algoOrder")
    assert problems(outcome(books, faults_on=[cancel])) == []
    assert problems(outcome(books, faults_on=[(T0 + 6_050, "ETHUSDT", *cancel[2:])])) != []


def test_stops_piling_up_one_a_tick_fail_and_a_lost_event_excuses_none() -> None:
    """What a stream that never reports our stops as accepted made the keeper do (the probe):
    a new stop a tick, the ones before it left, until a REST read listed them all."""
    books = Books()
    placed = [books.stop(T0 + 1_100 + i * TICK_MS) for i in range(4)]
    hidden = [(T0 + 1_100 + i * TICK_MS, _new_event(books, c)) for i, c in enumerate(placed)]
    for client_id in [books.first, *placed[:-1]]:
        books.cancel(client_id, T0 + 21_200)
    books.at(T0 + 60_000)
    found = problems(outcome(books, hidden=hidden))
    assert len(found) == 1
    assert "5 stops of ours" in found[0]


def test_a_stop_left_on_a_symbol_closed_by_hand_is_held_to_two_ticks() -> None:
    books = Books()
    books.sell("0.003", T0 + 2_000)
    books.cancel(books.first, T0 + 11_100)  # released by the second tick after the close
    books.at(T0 + 60_000)
    spans = stop_spans(books.state, outcome(books).outcome.watch.sending_ms)
    assert [(s.kind, len(s.ticks)) for s in spans] == [(FLAT, 2)]
    assert problems(outcome(books)) == []
    books = Books()
    books.sell("0.003", T0 + 2_000)
    books.cancel(books.first, T0 + 16_100)
    books.at(T0 + 60_000)
    assert len(problems(outcome(books))) == 1
    # the close's position event never reached the daemon: the check of positions (20 s)
    account = payloads.account_update([books.state.position_row(MARKET)], Decimal(0), "ORDER", 0)
    assert problems(outcome(books, hidden=[(T0 + 2_000, account)])) == []


def test_a_blind_stop_whose_entry_never_arrived_is_released_once_the_entry_is_settled() -> None:
    """An entry answered 503 (never processed): its blind stop stands on a flat symbol until
    the entry is settled as never accepted, `keeper.unknown_order_final_s` later."""
    books = Books()
    books.sell("0.003", T0)
    books.cancel(books.first, T0 + 500)
    blind = books.stop(T0 + 20_000)
    books.cancel(blind, T0 + 51_100)  # the tick 30 s after the entry was sent
    books.at(T0 + 90_000)
    assert problems(outcome(books)) != []
    entry = (T0 + 19_900, MARKET, "POST", "/fapi/v1/order")
    assert problems(outcome(books, faults_on=[entry])) == []


def test_a_stop_still_open_at_the_end_beside_another_or_on_a_flat_symbol_is_a_problem() -> None:
    books = Books()
    books.stop(T0 + 2_000)
    books.at(T0 + 2_500)
    found = problems(outcome(books))
    assert len(found) == 1
    assert "still at the end" in found[0]
    books = Books()
    books.sell("0.003", T0 + 2_000)
    books.at(T0 + 2_500)
    assert len(problems(outcome(books))) == 1


def test_a_stop_that_fired_is_not_open() -> None:
    books = Books()
    new = books.stop(T0 + 2_000)
    books.at(T0 + 3_000)
    books.state.marks[MARKET] = Decimal(books.trigger) / 2  # both fire: the first closes
    books.engine.sync()
    books.at(T0 + 60_000)
    statuses = {c: books.state.algo_orders[c]["algoStatus"] for c in (books.first, new)}
    assert sorted(statuses.values()) == ["FINISHED", "REJECTED"]
    spans = stop_spans(books.state, outcome(books).outcome.watch.sending_ms)
    assert [(s.kind, s.end_ms) for s in spans] == [(SEVERAL, T0 + 3_000)]


def _new_event(books: Books, client_id: str) -> dict[str, Any]:
    return payloads.algo_update(books.state.algo_orders[client_id], books.state.now_ms)


def test_the_stream_fault_drops_only_new_events_of_our_stops_from_a_generator_of_its_own() -> None:
    books = Books()
    ours = _new_event(books, books.first)
    faults = RandomStreamFaults(1, drop=0.5, drop_new_stops=1.0, new_stops_of=is_ours)
    before = faults.rng.getstate()
    assert faults.drops_new_stop(ours)
    assert faults.rng.getstate() == before  # the seed's other draws stay as they were
    theirs = {**ours, "o": {**ours["o"], "caid": "web_1"}}
    cancelled = {**ours, "o": {**ours["o"], "X": "CANCELED"}}
    target = {**ours, "o": {**ours["o"], "o": "TAKE_PROFIT_MARKET"}}
    assert not any(faults.drops_new_stop(e) for e in (theirs, cancelled, target))
    assert not RandomStreamFaults(1, drop_new_stops=0.0).drops_new_stop(ours)
