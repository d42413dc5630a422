"""Position keeper settings (SPEC §6, §9)."""

from __future__ import annotations

from pydantic import Field

from quantum_trader.settings_base import DAY_S, YEAR_S, Section


class KeeperSettings(Section):
    """How the keeper reconciles, resolves and protects.

    `adopt_stop_pct` / `adopt_reward_risk`: the stop and target of a position found on the
    exchange with no plan of ours (its entry's plan is used when we have it).
    `unknown_order_final_s`: after this long since it was sent, an order the exchange does not
    know counts as never accepted. It must exceed the exchange's receive window (5 s on
    Binance, sent explicitly), after which a delayed request can no longer be executed, by
    `config.RECV_WINDOW_MARGIN_S` at least (the settings refuse less).
    `rest_check_interval_s`: while the streams are usable, how often a REST snapshot checks
    their mirror (a REST snapshot is used on every tick while they are not: then how often
    every symbol's open conditional orders are read, weight 40, those of the 4 symbols at
    most the book names or REST holds being read each tick, weight 1 each: keeper/reads.py).
    `rest_position_check_s`: while the streams are usable, how often the mirror's positions
    alone are checked against REST (GET /fapi/v3/positionRisk, weight 5; the full check adds
    the open conditional orders, weight 40). A difference is handled as one the full check
    finds: REST is read in full and the mirror reseeded. User-data events carry no sequence
    number, so a dropped one is seen only by such a read: this bounds how long a position the
    stream did not show (a flip by hand whose events were lost, a position opened by hand)
    goes without a stop of ours, 4 ticks of 5 s at 20 s. 20 s adds at most 10 weight a minute
    (2 reads: the full check's minute has one already): the daemon's worst minute 115 of
    Binance's 2,400, 4.8 %; 15 s would put it at 120, 5.0 %, the budget's very edge
    (docs/BENCHMARKS.md). At or above `rest_check_interval_s` it never runs on its own.
    `stream_echo_timeout_s`: an order booked from its direct answer that the user-data stream
    has not reported this long after is taken as a missed event: the next tick reads REST.
    `refused_exit_stop_gap_pct`: when a full exit is refused while no stop of ours covers the
    position and the mark has reached its stop, the stop placed instead goes this fraction of
    the mark beyond it (at least one tick), so Binance does not refuse it as immediately
    triggering (-2021) when the mark moves while the order travels.
    `fees_unread_give_up_s`: an order of ours booked without its fills (they could not be
    read) has them read again once a tick until this long after it was booked, then its fee
    is given up (`fees_unread_given_up`). An hour bounds the reads at one an order a tick,
    720 at the 5 s tick, and stays well inside the 7 days for which Binance lists an
    order's trades.
    `external_close_mark_after_s`: a position closed outside the program on a tick that could
    not read the account's trades (a mark read or not) waits for them (read once a tick); this
    long after the close was seen, a mark read then books it instead (keeper/unpriced.py).
    A minute: Binance's request limits count by the minute, so a 429 has passed by then, and
    every second longer lets the mark drift further from the price the close was made at.
    `fill_risk_warn_factor`: an entry whose fill risks more than this many times the risk the
    risk guard approved (fill to stop, against the sizer's entry to stop) is said
    (`entry_risk_above_plan`), and its excess over the guard's per-trade cap sold
    (keeper/fill_check.py). 1.5: the sizer keeps the cost model's expected slippage within a
    quarter of the stop distance (`sizing.max_slippage_stop_share`), so a fill twice that far
    off is a book thinner than the model, not the slippage it priced.
    """

    adopt_stop_pct: float = Field(0.03, gt=0, lt=1)
    adopt_reward_risk: float = Field(2.0, gt=0)
    unknown_order_final_s: float = Field(30.0, ge=10, le=600)
    rest_check_interval_s: float = Field(60.0, gt=0, le=DAY_S)
    rest_position_check_s: float = Field(20.0, gt=0, le=DAY_S)
    stream_echo_timeout_s: float = Field(10.0, gt=0, le=YEAR_S)
    refused_exit_stop_gap_pct: float = Field(0.002, gt=0, le=0.05)
    fees_unread_give_up_s: float = Field(3600.0, gt=0, le=6 * 86_400)
    external_close_mark_after_s: float = Field(60.0, gt=0, le=3600)
    fill_risk_warn_factor: float = Field(1.5, gt=1, le=10)
