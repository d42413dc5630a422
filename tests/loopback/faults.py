"""Faults the stand-in injects: scripted per test, or drawn at random from a seed.

REST: `Fault` (the next matching request), `Outage` (every matching request in a time window
of the stand-in's clock), `RandomFaults` (per request, from a seed). Streams: `StreamFaults`
(the hub's switches: silence, duplicated, reordered and dropped user events) and
`RandomStreamFaults` (per second and per event, from a seed).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .engine import FillPlan

ORDER_PATHS = ("/fapi/v1/order",)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of (or after) answering the next request whose path contains
    `path` (and whose method is `method`, and whose `symbol` parameter is `symbol`, when
    given).

    `code` set: answer {"code": code, "msg": msg} with HTTP `status`, unprocessed. `body` set:
    answer HTTP `status` with this raw text, unprocessed. `delay_s` set: process the request,
    then wait before answering (a client with a shorter timeout loses the answer).
    `retry_after_s`: a Retry-After header on the answer. `fill`: an order executes only part.
    `processed`: with `code` or `body`, the request is processed first and the error answered
    after (Binance's 5XX: "the execution status is UNKNOWN and could have been a success").
    """

    path: str = ""
    status: int = 400
    code: int | None = None
    msg: str = "loopback fault"
    delay_s: float | None = None
    body: str | None = None
    retry_after_s: float | None = None
    fill: FillPlan | None = None
    method: str | None = None
    processed: bool = False
    symbol: str | None = None

    def matches(self, method: str, path: str, params: Mapping[str, str] | None = None) -> bool:
        wanted = self.symbol in (None, (params or {}).get("symbol"))
        return self.path in path and self.method in (None, method) and wanted


@dataclass(frozen=True, slots=True)
class Outage:
    """Requests whose path contains `path` (and whose `symbol` parameter is `symbol`, when
    given) fail with `status` (unprocessed) while the stand-in's clock is in
    [start_ms, end_ms)."""

    path: str
    start_ms: int
    end_ms: int
    status: int = 503
    body: str = "Service Unavailable"
    method: str | None = None
    symbol: str | None = None

    def covers(
        self, method: str, path: str, now_ms: int, params: Mapping[str, str] | None = None
    ) -> bool:
        return (
            self.path in path
            and self.method in (None, method)
            and self.symbol in (None, (params or {}).get("symbol"))
            and self.start_ms <= now_ms < self.end_ms
        )


@dataclass
class RandomFaults:
    """Per request, with these probabilities (drawn from `seed`, in request order):
    `lost_answer` (processed, answered after `lost_answer_delay_s`), `unavailable` (503,
    unprocessed), `rate_limited` (429 with Retry-After `retry_after_s`, unprocessed) and, on
    orders, `partial_fill` (half executes, the order ends EXPIRED)."""

    seed: int
    lost_answer: float = 0.0
    unavailable: float = 0.0
    rate_limited: float = 0.0
    partial_fill: float = 0.0
    lost_answer_delay_s: float = 5.0
    retry_after_s: float = 1.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self, method: str, path: str) -> Fault | None:
        roll = self.rng.random()
        if roll < self.unavailable:
            return Fault(path, status=503, body="Service Unavailable")
        roll -= self.unavailable
        if roll < self.rate_limited:
            return Fault(path, status=429, code=-1003, msg="Too many requests.",
                         retry_after_s=self.retry_after_s)  # fmt: skip
        roll -= self.rate_limited
        if roll < self.lost_answer:
            return Fault(path, delay_s=self.lost_answer_delay_s)
        roll -= self.lost_answer
        if roll < self.partial_fill and method == "POST" and path in ORDER_PATHS:
            return Fault(path, fill=FillPlan(Decimal("0.5")))
        return None


@dataclass
class StreamFaults:
    """The hub's switches. `silent_until_ms` by stream kind ("market", "user"): nothing is
    sent and pings go unanswered until then. The next `duplicate` user events are sent
    twice, the next `reorder` are each held back behind the following one, and the next
    `drop` are never sent (a missed event only a REST snapshot reveals). `marks_left_out`:
    market ids the mark-price streams never carry (REST still answers them), so their
    streamed marks are stale for good."""

    silent_until_ms: dict[str, int] = field(default_factory=dict)
    duplicate: int = 0
    reorder: int = 0
    drop: int = 0
    marks_left_out: set[str] = field(default_factory=set)


@dataclass
class RandomStreamFaults:
    """Stream faults drawn from `seed`: each second, a connection is closed with
    `disconnect_per_s` and a stream goes silent for `silence_s` with `silence_per_s`; each
    user event is duplicated, reordered or dropped with `duplicate`, `reorder`, `drop`.

    `drop_new_stops`: the chance that the ALGO_UPDATE saying a STOP_MARKET order was accepted
    (status NEW) is dropped, for the orders whose client id `new_stops_of` accepts (None:
    every one) — a client's own stops unseen by its stream until it reads REST. Drawn from a
    generator of its own (`stops_rng`), only for such events, so a seed's other draws stay
    as they were with it on or off."""

    seed: int
    disconnect_per_s: float = 0.0
    silence_per_s: float = 0.0
    silence_s: float = 15.0
    duplicate: float = 0.0
    reorder: float = 0.0
    drop: float = 0.0
    drop_new_stops: float = 0.0
    new_stops_of: Callable[[str], bool] | None = None
    rng: random.Random = field(init=False)
    stops_rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.stops_rng = random.Random(f"new-stops-{self.seed}")

    def drops_new_stop(self, event: Mapping[str, object]) -> bool:
        """Whether `event` is a stop's NEW ALGO_UPDATE that `drop_new_stops` drops (a draw)."""
        if self.drop_new_stops <= 0 or event.get("e") != "ALGO_UPDATE":
            return False
        order = event.get("o")
        if not isinstance(order, Mapping) or order.get("X") != "NEW":
            return False
        if order.get("o") != "STOP_MARKET":
            return False
        if self.new_stops_of is not None and not self.new_stops_of(str(order.get("caid", ""))):
            return False
        return self.stops_rng.random() < self.drop_new_stops


def random_outages(
    seed: int,
    paths: tuple[str, ...],
    start_ms: int,
    end_ms: int,
    count: int,
    duration_s: tuple[float, float] = (10.0, 40.0),
) -> list[Outage]:
    """`count` outages of `paths` (one each, drawn from `seed`) starting in [start_ms, end_ms),
    each lasting between `duration_s` bounds: read outages of tens of seconds."""
    rng = random.Random(seed)
    outages = []
    for _ in range(count):
        begin = rng.randrange(start_ms, end_ms)
        length = round(rng.uniform(*duration_s) * 1000)
        outages.append(Outage(rng.choice(paths), begin, begin + length))
    return sorted(outages, key=lambda o: o.start_ms)
