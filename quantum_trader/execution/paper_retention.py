"""What the paper account forgets, as Binance USD-M does: pruned at the account's own clock.

Binance's documented retention (USD-M futures API, developers.binance.com):

- Query Order (GET /fapi/v1/order) and Query Algo Order (GET /fapi/v1/algoOrder): an order
  CANCELED or EXPIRED with no filled trade is not found once created time + 3 days < now;
  no order is found once created time + 90 days < now.
- Account Trade List (GET /fapi/v1/userTrades): trades of the past 6 months only.
- Get Income History (GET /fapi/v1/income, funding fees among them): the last three months.

So `prune` forgets, at `now_ms` (the account's simulated time, never the wall clock): orders
canceled or expired with nothing filled 3 days after they ended; other final orders 90 days
after; fills 184 days after (six months at their longest); funding settlements 92 days
after (three months at their longest).

Kept whatever its age: an order still live (not final); and everything of a symbol from the
opening of its position (`HeldSpan`) on, while it is held and for `CLOSED_GRACE_MS` (7 days)
after it went flat (from the oldest such position's opening): its fills and orders (the
keeper reads an order's fills, and the account's trades in a window of at most 7 days, while
it books the position and for up to 6 days after, `keeper.fees_unread_give_up_s`), and its
funding, so that `fetch_funding_paid(symbol, since=its opening)` answers exactly what it did
before pruning, for a position held a year too (Binance's own answer would have lost all but
three months).
A canceled or expired order with nothing filled has no fills to ask for: it goes 3 days after
it ended even then (the keeper looks an order up at the tick after it ended). Binance counts
both order rules from the creation, so a stop that rested longer than 3 days is not found
the moment it is canceled; the paper account counts from the order's end, so the lookup a
cancel can be followed by still finds it (a filled order likewise stays 90 days from its fill).

The fills forgotten are counted (`PaperState.pruned_fills`), so the account's fill count
(`PaperState.fill_count`) stays the true total the continuity check compares with the
database's. Lifetime totals (wallet, realized PnL, fees, funding) never change.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Fill, Order, OrderStatus
from quantum_trader.execution.paper_state import HeldSpan, PaperState
from quantum_trader.record import record

DAY_MS = 86_400_000
UNFILLED_ORDER_RETENTION_MS = 3 * DAY_MS  # Query Order: CANCELED/EXPIRED, no filled trade
ORDER_RETENTION_MS = 90 * DAY_MS  # Query Order: created time + 90 days
TRADE_RETENTION_MS = 184 * DAY_MS  # Account Trade List: "the past 6 months"
FUNDING_RETENTION_MS = 92 * DAY_MS  # Get Income History: "the last three months"
CLOSED_GRACE_MS = int(timedelta(days=7).total_seconds() * 1000)  # the keeper's widest window
PRUNE_EVERY_MS = 3_600_000  # at most once a simulated hour
_UNFILLED_ENDINGS = (OrderStatus.CANCELED, OrderStatus.EXPIRED)


@record
class Pruned:
    """How many of each the last `prune` forgot (true when any)."""

    orders: int
    fills: int
    funding: int

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.funding)


def note_holding(state: PaperState, symbol: str, held: bool, now_ms: int) -> None:
    """Record that `symbol`'s position opened (`held`) or went flat at `now_ms`."""
    spans = state.held.setdefault(symbol, [])
    if held:
        spans.append(HeldSpan(now_ms, None))
    elif spans and spans[-1].closed_ms is None:
        spans[-1].closed_ms = now_ms
    else:  # a position with no span (not expected): kept whole until now
        spans.append(HeldSpan(0, now_ms))


def prune(state: PaperState, now_ms: int) -> Pruned:
    """Forget what Binance no longer returns at `now_ms` (see the module docstring)."""
    kept_from = _kept_from(state, now_ms)
    orders = _prune_orders(state, now_ms, kept_from)
    fills = _prune_fills(state, now_ms, kept_from)
    funding = _prune_funding(state, now_ms, kept_from)
    return Pruned(orders, fills, funding)


def _kept_from(state: PaperState, now_ms: int) -> dict[str, int]:
    """By symbol, the instant from which everything is kept: the opening of its oldest
    position held, or closed less than `CLOSED_GRACE_MS` ago; positions closed longer ago are
    forgotten. A position with no span (not expected) keeps its symbol whole."""
    kept = {}
    for symbol, spans in list(state.held.items()):
        recent = [s for s in spans if s.closed_ms is None or now_ms - s.closed_ms < CLOSED_GRACE_MS]
        if recent:
            state.held[symbol] = recent
            kept[symbol] = min(s.opened_ms for s in recent)
        else:
            del state.held[symbol]
    for symbol in state.positions:
        kept.setdefault(symbol, 0)
    return kept


def _cut(now_ms: int, retention_ms: int, kept_from: int | None) -> int:
    """Records before this instant are forgotten."""
    horizon = now_ms - retention_ms
    return horizon if kept_from is None else min(horizon, kept_from)


def _order_forgotten(order: Order, filled: bool, now_ms: int, kept_from: int | None) -> bool:
    """Binance's two rules, each counted from the order's last change (its creation, or its
    end) rather than its creation alone: see the module docstring."""
    if not order.status.is_final:
        return False
    changed_ms = ms_from_utc(max(order.created_at, order.updated_at or order.created_at))
    if order.status in _UNFILLED_ENDINGS and not filled and order.filled_quantity == 0:
        return changed_ms + UNFILLED_ORDER_RETENTION_MS < now_ms
    return changed_ms < _cut(now_ms, ORDER_RETENTION_MS, kept_from)


def _prune_orders(state: PaperState, now_ms: int, kept_from: dict[str, int]) -> int:
    forgotten = [
        cid
        for cid, order in state.orders.items()
        if _order_forgotten(order, bool(state.fills.get(cid)), now_ms, kept_from.get(order.symbol))
    ]
    for cid in forgotten:
        del state.orders[cid]
    return len(forgotten)


def _prune_fills(state: PaperState, now_ms: int, kept_from: dict[str, int]) -> int:
    forgotten = 0
    for cid, fills in list(state.fills.items()):
        kept = [f for f in fills if not _fill_forgotten(f, now_ms, kept_from.get(f.symbol))]
        if len(kept) == len(fills):
            continue
        forgotten += len(fills) - len(kept)
        if kept:
            state.fills[cid] = kept
        else:
            del state.fills[cid]
    state.pruned_fills += forgotten
    return forgotten


def _fill_forgotten(fill: Fill, now_ms: int, kept_from: int | None) -> bool:
    return ms_from_utc(fill.time) < _cut(now_ms, TRADE_RETENTION_MS, kept_from)


def _settlement_time(entry: tuple[int, object]) -> int:
    return entry[0]


def _prune_funding(state: PaperState, now_ms: int, kept_from: dict[str, int]) -> int:
    """Settlements are in time order (paper_ledger.py): the forgotten are a head."""
    forgotten = 0
    for symbol, entries in list(state.funding.items()):
        cut = _cut(now_ms, FUNDING_RETENTION_MS, kept_from.get(symbol))
        first = bisect_left(entries, cut, key=_settlement_time)
        if first == 0:
            continue
        forgotten += first
        if first == len(entries):
            del state.funding[symbol]
        else:
            state.funding[symbol] = entries[first:]
    return forgotten
