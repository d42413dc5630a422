"""The fault campaign with a person trading by hand on the same account.

`run_by_hand(seed, ...)` is `campaign.run_campaign` (the daemon in testnet mode, in-process on
a simulated clock, against the stand-in with faults drawn from `seed`) with a person beside it
who now and then (`SECONDS_BETWEEN`, `TICKS_BETWEEN`) trades by hand on the account:
through the stand-in's HTTP API as a second client of the same account (Binance's web site:
the header `SECOND_CLIENT`, so the API's faults never touch the person's requests and the
daemon's fault draws stay its own), with client order ids that are not ours (`web_…`). What
the person does is drawn from the seed: on a symbol the account holds, a partial reduction,
a full close, a flip (LONG 3 → SHORT 3 in one market order), an addition on the position's
side (a share of it, as a reduction's), or cancelling our protective stop or our
take-profit (since 2026-12-04: the draws of a seed changed then); or, on a symbol of the
daemon's that nothing holds, opening a position of 1,400–2,600 USDT, either side
(`by_hand_person.OPEN_NOTIONAL_USDT`, about our entries' size; `add` and `open` since the
evening of 2026-12-04, when the draws of a seed changed again). The person acts only while
the faults are armed; the daemon then settles without faults or person, as in the fault
campaign.

Watched, on top of the fault campaign's checks (campaign.py; positions and every order of
ours, database against the stand-in, at the end):

- no position the stand-in holds (ours, one a flip or the person opened, one the person
  added to, one whose stop the person cancelled) goes without a reduce-only stop of ours for
  more than `STOP_WITHIN_TICKS` of the keeper's ticks that could send — or, where a user-data
  event about it never reached the daemon, than the REST check that reveals it allows
  (`allowed_ticks`);
- every close by hand (a person's trade that takes a position to zero or across it) is booked
  as a closed trade with reason MANUAL at the price of the account's trades — that trade's, or
  the average of it and the person's reductions just before it that a tick booked together
  (`CloseByHand.exit_prices`) — or at the mark when the daemon could not read the account's
  trades for `keeper.external_close_mark_after_s` after it saw the close (`at_the_mark`, the
  keeper's design); and no closed trade is booked MANUAL without one;
- an entry of ours reaches the stand-in while it holds the symbol only beside a position
  the person opened that the keeper had not acted on yet (`entries_beside_an_open`): its
  books, which refuse the entry, learn of such a position at the tick that adopts it; one
  that went against that position without crossing zero is booked as our position closed
  MANUAL at the person's opening trade (`raced_closes`: the account's result);
- no fee is counted twice: on each symbol the fees the database booked (closed trades, and the
  positions still open) do not exceed the commissions the stand-in charged;
- our take-profits (by_hand_targets.py): one the person cancelled on a position an entry of
  ours opened is back, at its trigger for all that is held, within the ticks its bound allows
  (`target_allowed_ticks`) unless the position changed or the mark reached the target first;
  never two of ours open at once on a symbol; none placed after one of ours executed while
  the position it executed on is held;
- our stops (by_hand_stops.py): no span with more than one reduce-only stop of ours open on
  a symbol, nor one with a stop of ours open on a symbol holding nothing, lasting more of
  the keeper's ticks than a replacement or a release takes (`SEVERAL_TICKS`, `FLAT_TICKS`,
  and what the design allows beside them), and none left so at the end; the most at once
  and the longest of each kind in the RESULT line, each span a tick or more long a STOPS
  line.

A wider campaign from the command line (one process per seed, five at a time; each seed's log
kept in LOGS/SEED.log, the problems printed):

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/by_hand.py \\
        campaign FIRST COUNT [--at-once 5] [--minutes 4] [--logs LOGS]

and one seed, its daemon's log on stdout, then what the person did (BY HAND), the stand-in's
trades (TRADE) and conditional orders (ALGO), the spans without a stop of more than a tick
(BARE), what followed each take-profit cancelled by hand (TAKE-PROFIT), the entries of ours
excused beside a position opened by hand and the round trips by hand the stream never
reported (EXCUSED), the fills and position changes the stream never delivered (HIDDEN), the
spans with more than one stop of ours or one on a flat symbol (STOPS) and the problems
(PROBLEM):

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/by_hand.py run SEED

With `--restart` (run and campaign) the daemon stops gracefully half-way through the faulted
run, stays down for `DOWN_S` simulated seconds while the person goes on trading (closes of
our positions, positions opened and flipped, stops cancelled: what the first look after the
start must find and book), and starts again on the same data directory; the checks are the
same. The person's draws after the stop differ from the same seed's without it. With
`--round-trips` the person also opens a position and closes it at once (by_hand_person.py);
the suite's seeds run without. With `--drop-new-stops P` the user-data stream drops the
ALGO_UPDATE of each stop of ours accepted (NEW) with chance P, beside the campaign's other
stream faults (loopback/faults.py `RandomStreamFaults.drop_new_stops`, its own draws: the
seed's others unchanged); the suite's seeds run without.

A seed fixes what is drawn — the signals, the faults, the person's actions and their timing
— not how they interleave with the daemon's loops on the machine of the day (the person
acts on whatever is held when its turn comes), so a rerun does not always repeat a failure.

The person is by_hand_person.py's, the checks by_hand_check.py's; this module runs a seed and
the command line.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import uvloop
from by_hand_check import (
    HandOutcome,
    allowed_ticks,
    closes_by_hand,
    entries_beside_an_open,
    hand_problems,
)
from by_hand_person import HandAction, Person
from by_hand_stops import stop_spans, stops_summary
from by_hand_targets import target_returns
from campaign import MARKET_IDS, Restart, run_campaign
from loopback.state import LoopbackState
from seeds_cli import run_seeds, seed_commands

from quantum_trader.clock import utc_from_ms
from quantum_trader.storage.sqlite import SqliteRepository

TRADES_ROUTE = "/fapi/v1/userTrades"
# a seed's lines the campaign prints
SHOWN = ("RESULT", "PROBLEM", "TAKE-PROFIT", "EXCUSED", "STOPS")
DOWN_S = 120.0  # simulated seconds the daemon is stopped for, with `--restart`
ROUND_TRIPS_HELP = "the person also opens and closes at once (not in the suite's seeds)"
DROP_NEW_STOPS_HELP = (
    "the chance the stream drops the event of a stop of ours accepted (NEW); 0: off, as in "
    "the suite's seeds"
)


async def run_by_hand(
    seed: int,
    data_dir: Path,
    *,
    minutes: float = 4.0,
    restart: bool = False,
    round_trips: bool = False,
    drop_new_stops: float = 0.0,
) -> HandOutcome:
    """`restart`: the daemon stopped half-way for `DOWN_S`, the person trading meanwhile;
    `round_trips`: the person draws round trips too (by_hand_person.py); `drop_new_stops`:
    the chance the user-data stream drops the event of a stop of ours accepted (NEW)."""
    person = Person(seed, round_trips=round_trips)
    stopped = Restart(minutes * 30, DOWN_S, person.while_down) if restart else None
    outcome = await run_campaign(
        seed, data_dir, minutes=minutes, beside=person.beside, restart=stopped,
        drop_new_stops=drop_new_stops,
    )  # fmt: skip
    assert person.server is not None
    state = person.server.state
    database = await SqliteRepository.open(data_dir / "quantum_trader.db", read_only=True)
    try:
        closed = await database.closed_trades()
        still_open = await database.open_positions()
    finally:
        await database.close()
    booked: dict[str, Decimal] = defaultdict(Decimal)
    for symbol, fees in [(t.symbol, t.fees_usdt) for t in closed] + [
        (p.symbol, p.fees_usdt) for p in still_open
    ]:
        booked[MARKET_IDS[symbol]] += fees
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for trade in state.trades:
        assert trade["commissionAsset"] == "USDT"
        paid[trade["symbol"]] += Decimal(trade["commission"])
    closes = closes_by_hand(state)
    unread = [t for t, _, path in person.server.faulted if path == TRADES_ROUTE]
    holds = list(person.server.retry_after_ms)
    keeper = person.keeper
    assert keeper is not None
    return HandOutcome(
        outcome,
        person.actions,
        closes,
        closed,
        unread,
        holds,
        state,
        list(person.server.streams.hidden),
        keeper.rest_position_check_s,
        keeper.rest_check_interval_s,
        dict(paid),
        dict(booked),
        dict(person.booked_seen_ms),
        list(person.faults_on),
        list(person.outages),
        person.take_profit_retry_s,
        list(person.server.streams.unconnected),
    )


def summary(seed: int, result: HandOutcome) -> str:
    """One line: what the seed did (for the wide campaign's output); an action the stand-in
    did not carry out is counted with a `?`."""
    kinds = Counter(a.kind + ("" if _done(a) else "?") for a in result.actions)
    paid = sum(result.fees_paid.values(), Decimal(0))
    booked = sum(result.fees_booked.values(), Decimal(0))
    watch = result.outcome.watch
    bare = max(watch.unprotected_ticks.values(), default=0)
    stops = stops_summary(stop_spans(result.standin, watch.sending_ms))
    return (
        f"seed {seed}: entries {watch.entries}, by hand "
        f"{dict(sorted(kinds.items()))}, closes by hand {len(result.closes)}, closed trades "
        f"{len(result.closed)}, most ticks bare {bare}, fees paid {paid:.4f} booked {booked:.4f}, "
        f"{stops}"
    )


def _done(action: HandAction) -> bool:
    return action.answer == "FILLED" or action.answer.startswith("canceled")


async def _one(
    seed: int, minutes: float, restart: bool, round_trips: bool, drop_new_stops: float
) -> int:
    with tempfile.TemporaryDirectory(prefix=f"by-hand-{seed}-") as data_dir:
        result = await run_by_hand(
            seed, Path(data_dir), minutes=minutes, restart=restart, round_trips=round_trips,
            drop_new_stops=drop_new_stops,
        )  # fmt: skip
    found = hand_problems(seed, result)
    for action in result.actions:
        at = utc_from_ms(action.time_ms).strftime("%H:%M:%S.%f")[:-3]
        print(f"BY HAND {at} {action}", flush=True)
    print(f"RESULT {summary(seed, result)}", flush=True)
    for market_id, start_ms, end_ms, planned in result.outcome.watch.bare_spans:
        ticks = ", ".join(utc_from_ms(t).strftime("%H:%M:%S.%f")[:-3] for t in planned)
        print(
            f"BARE {market_id} {utc_from_ms(start_ms):%H:%M:%S}–{utc_from_ms(end_ms):%H:%M:%S} "
            f"(sim_time), ticks planned at {ticks}",
            flush=True,
        )
    for span in stop_spans(result.standin, result.outcome.watch.sending_ms):
        if span.ticks or span.open_at_end:
            at = ", ".join(utc_from_ms(t).strftime("%H:%M:%S.%f")[:-3] for t in span.ticks)
            print(f"STOPS {span}; ticks planned at {at}", flush=True)
    _print_books(result.standin)
    for trade in result.closed:
        print(f"CLOSED {trade.closed_at:%H:%M:%S.%f} {trade.symbol} {trade.side} {trade.quantity} "
              f"{trade.exit_reason} at {trade.exit_price} fees {trade.fees_usdt}")  # fmt: skip
    for cancel in target_returns(result, allowed_ticks):
        print(f"TAKE-PROFIT {cancel}", flush=True)
    for client_id in sorted(entries_beside_an_open(result)):
        print(f"EXCUSED entry {client_id}: beside a position opened by hand, not yet seen")
    for line in _hidden_lines(result):
        print(line, flush=True)
    for line in found:
        print(f"PROBLEM {line}", flush=True)
    return 1 if found else 0


def _hidden_lines(result: HandOutcome) -> list[str]:
    """The fills and position changes the stand-in's user-data stream never delivered (a
    silence, a dropped event, or no stream connected), for reading a round trip not booked:
    `HIDDEN time event market [client id status] (why)`."""
    unconnected = {id(event) for _, event in result.unconnected}
    lines = []
    for ms, event in result.hidden:
        kind = event.get("e", "?")
        if kind == "ACCOUNT_UPDATE":
            markets = [p.get("s", "?") for p in event.get("a", {}).get("P", [])]
            what = " ".join(markets)
        elif kind in ("ORDER_TRADE_UPDATE", "ALGO_UPDATE"):
            order = event.get("o", {})
            client = order.get("c") or order.get("caid", "")
            what = f"{order.get('s', '?')} {client} {order.get('X', '')}".rstrip()
        else:
            continue
        why = "unconnected" if id(event) in unconnected else "silenced or dropped"
        at = utc_from_ms(ms).strftime("%H:%M:%S.%f")[:-3]
        lines.append(f"HIDDEN {at} {kind} {what} ({why})")
    return lines


def _print_books(state: LoopbackState) -> None:
    """The stand-in's trades and conditional orders, for reading a failure beside the log."""
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    for t in sorted(state.trades, key=lambda t: int(t["id"])):
        at = utc_from_ms(t["time"]).strftime("%H:%M:%S.%f")[:-3]
        print(f"TRADE {at} {t['symbol']} {t['side']} {t['qty']} @ {t['price']} "
              f"fee {t['commission']} {client_of.get(t['orderId'], t['orderId'])}")  # fmt: skip
    for o in state.algo_orders.values():
        at = utc_from_ms(o["updateTime"]).strftime("%H:%M:%S.%f")[:-3]
        made = utc_from_ms(o["createTime"]).strftime("%H:%M:%S.%f")[:-3]
        actual = state.orders.get(f"algo-{o['algoId']}", {})
        print(f"ALGO {made}–{at} {o['clientAlgoId']} {o['symbol']} {o['side']} {o['quantity']} "
              f"trigger {o['triggerPrice']} {o['algoStatus']} "
              f"{actual.get('status', '')} {actual.get('executedQty', '')}")  # fmt: skip


def main() -> int:
    parser, run, many = seed_commands(__doc__.split("\n\n")[0], 5, "by-hand-logs")
    for command in (run, many):
        command.add_argument("--restart", action="store_true", help="stopped half-way, traded on")
        command.add_argument("--round-trips", action="store_true", help=ROUND_TRIPS_HELP)
        command.add_argument("--drop-new-stops", type=float, default=0.0, help=DROP_NEW_STOPS_HELP)
    args = parser.parse_args()
    if args.command == "run":
        one = _one(args.seed, args.minutes, args.restart, args.round_trips, args.drop_new_stops)
        return uvloop.run(one)
    options = ["--minutes", str(args.minutes)]
    options += ["--restart"] if args.restart else []
    options += ["--round-trips"] if args.round_trips else []
    options += ["--drop-new-stops", str(args.drop_new_stops)] if args.drop_new_stops else []
    return run_seeds(__file__, args.first, args.count, args.at_once, args.logs, options, SHOWN)


if __name__ == "__main__":
    sys.exit(main())
