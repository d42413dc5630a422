"""The planner's working copy of the books: mutable, indexed by symbol, O(1) updates.

`Book` is what the keeper publishes (immutable); planning a tick over 200 positions would copy
it hundreds of times, so the planner edits a `Draft` and freezes it once at the end.

A draft owns its dicts (copies of the book's) and hands them to the book it freezes into,
which is the draft's last use: copied once a plan, not twice (freezing took ≈ 23,000
instructions, ≈ 14,000 since).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from quantum_trader.domain import Order, Position
from quantum_trader.keeper.added_unread import UnreadAddition
from quantum_trader.keeper.book import Book, EntryLimit, Intent, UnreadFees
from quantum_trader.keeper.part_unread import UnreadPart
from quantum_trader.keeper.unpriced import UnpricedClose

_V = TypeVar("_V")


class Draft:
    def __init__(self, book: Book) -> None:
        self.positions: dict[str, Position] = dict(book.positions)
        self.intents: dict[str, Intent] = dict(book.intents)
        self.unechoed: dict[str, tuple[str, datetime]] = dict(book.unechoed)
        self.working: dict[str, Order] = dict(book.working)
        self.fees_unread: dict[str, UnreadFees] = dict(book.fees_unread)
        self.unpriced: dict[str, UnpricedClose] = dict(book.unpriced)
        self.entries_seen: dict[str, Decimal] = dict(book.entries_seen)
        self.limits: dict[str, EntryLimit] = dict(book.limits)
        self.targets_refused: dict[str, datetime] = dict(book.targets_refused)
        self.added_unread: dict[str, UnreadAddition] = dict(book.added_unread)
        self.parts_unread: dict[str, tuple[UnreadPart, ...]] = dict(book.parts_unread)
        self.entries_moved: dict[str, Decimal] = dict(book.entries_moved)
        self._by_symbol: dict[str, dict[str, Intent]] = {}
        for intent in self.intents.values():
            self._by_symbol.setdefault(intent.symbol, {})[intent.client_order_id] = intent
        self._working_by_symbol: dict[str, dict[str, Order]] = {}
        for order in self.working.values():
            self._working_by_symbol.setdefault(order.symbol, {})[order.client_order_id] = order

    def intents_for(self, symbol: str) -> list[Intent]:
        return list(self._by_symbol.get(symbol, {}).values())

    def working_for(self, symbol: str) -> list[Order]:
        return list(self._working_by_symbol.get(symbol, {}).values())

    def add_working(self, order: Order) -> None:
        self.working[order.client_order_id] = order
        self._working_by_symbol.setdefault(order.symbol, {})[order.client_order_id] = order

    def drop_working(self, client_order_id: str) -> None:
        order = self.working.pop(client_order_id, None)
        if order is not None:
            self._working_by_symbol.get(order.symbol, {}).pop(client_order_id, None)

    def put(self, position: Position) -> None:
        self.positions[position.symbol] = position

    def drop_position(self, symbol: str) -> None:
        self.positions.pop(symbol, None)

    def drop_intent(self, client_order_id: str) -> None:
        intent = self.intents.pop(client_order_id, None)
        if intent is not None:
            self._by_symbol.get(intent.symbol, {}).pop(client_order_id, None)

    def frozen(self) -> Book:
        """The book the draft became; its dicts go to it, so the draft is not used after."""
        positions = self.positions
        return Book(
            positions,
            self.intents,
            self.unechoed,
            self.working,
            self.fees_unread,
            self.unpriced,
            _held(self.entries_seen, positions),
            _held(self.limits, positions),
            _held(self.targets_refused, positions),
            self.added_unread,  # one whose position closed: its trade's (fee_carry.py)
            {s: p for s, p in self.parts_unread.items() if s in positions or s in self.unpriced}
            if self.parts_unread
            else self.parts_unread,
            _held(self.entries_moved, positions),
        )


def _held(by_symbol: dict[str, _V], positions: dict[str, Position]) -> dict[str, _V]:
    """`by_symbol` for the symbols held: itself where it names no other."""
    if by_symbol.keys() <= positions.keys():
        return by_symbol
    return {s: v for s, v in by_symbol.items() if s in positions}
