-- The initial ledger. Decimals are TEXT (exact), datetimes ISO-8601 UTC TEXT with microseconds
-- (fixed width, so text order is time order), booleans INTEGER 0/1, JSON as TEXT.

CREATE TABLE orders (
    client_order_id   TEXT PRIMARY KEY,
    exchange_order_id TEXT,
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    quantity          TEXT NOT NULL,
    status            TEXT NOT NULL,
    trigger_price     TEXT,
    reduce_only       INTEGER NOT NULL,
    filled_quantity   TEXT NOT NULL,
    average_price     TEXT,
    fee_usdt          TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT,
    detail            TEXT NOT NULL
) STRICT;
CREATE INDEX orders_by_created ON orders (created_at, client_order_id);
CREATE INDEX orders_by_status ON orders (status);

-- Binance trade ids are sequences per symbol, so a fill is identified by (symbol, trade_id).
CREATE TABLE fills (
    id              INTEGER PRIMARY KEY,
    trade_id        TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    price           TEXT NOT NULL,
    fee_usdt        TEXT NOT NULL,
    time            TEXT NOT NULL,
    is_maker        INTEGER NOT NULL,
    UNIQUE (symbol, trade_id)
) STRICT;
CREATE INDEX fills_by_time ON fills (time, trade_id);
CREATE INDEX fills_by_order ON fills (client_order_id);

CREATE TABLE positions (
    symbol               TEXT PRIMARY KEY,
    side                 TEXT NOT NULL,
    quantity             TEXT NOT NULL,
    entry_price          TEXT NOT NULL,
    leverage             INTEGER NOT NULL,
    stop_price           TEXT NOT NULL,
    take_profit_price    TEXT NOT NULL,
    opened_at            TEXT NOT NULL,
    entry_order_id       TEXT NOT NULL,
    initial_stop_price   TEXT NOT NULL,
    initial_quantity     TEXT NOT NULL,
    atr_pct              REAL NOT NULL,
    exit_mode            TEXT NOT NULL,
    trail_mode           TEXT NOT NULL,
    stop_order_id        TEXT,
    take_profit_order_id TEXT,
    stop_replaced_at     TEXT,
    break_even_done      INTEGER NOT NULL,
    partial_taken        INTEGER NOT NULL,
    trailing_active      INTEGER NOT NULL,
    realized_pnl_usdt    TEXT NOT NULL,
    fees_usdt            TEXT NOT NULL,
    highest_price        TEXT NOT NULL,
    lowest_price         TEXT NOT NULL
) STRICT;

-- One row per round trip; recording the same close twice (crash replay) stores it once.
CREATE TABLE closed_trades (
    id             INTEGER PRIMARY KEY,
    symbol         TEXT NOT NULL,
    side           TEXT NOT NULL,
    quantity       TEXT NOT NULL,
    entry_price    TEXT NOT NULL,
    exit_price     TEXT NOT NULL,
    opened_at      TEXT NOT NULL,
    closed_at      TEXT NOT NULL,
    exit_reason    TEXT NOT NULL,
    pnl_usdt       TEXT NOT NULL,
    fees_usdt      TEXT NOT NULL,
    funding_usdt   TEXT NOT NULL,
    r_multiple     REAL NOT NULL,
    entry_order_id TEXT NOT NULL,
    UNIQUE (symbol, entry_order_id, closed_at)
) STRICT;
CREATE INDEX closed_trades_by_close ON closed_trades (closed_at);

CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    cycle_id      TEXT NOT NULL,
    time          TEXT NOT NULL,
    gate          TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    approved      INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    until         TEXT,
    size_factor   REAL NOT NULL,
    exit_mode     TEXT,
    tp_r_multiple REAL,
    confidence    REAL NOT NULL,
    side          TEXT,
    extra         TEXT NOT NULL
) STRICT;
CREATE INDEX decisions_by_time ON decisions (time);

CREATE TABLE position_events (
    id             INTEGER PRIMARY KEY,
    symbol         TEXT NOT NULL,
    time           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    price          TEXT,
    quantity       TEXT,
    new_stop_price TEXT
) STRICT;
CREATE INDEX position_events_by_time ON position_events (time);

CREATE TABLE equity_snapshots (
    id               INTEGER PRIMARY KEY,
    time             TEXT NOT NULL,
    equity_usdt      TEXT NOT NULL,
    wallet_usdt      TEXT NOT NULL,
    used_margin_usdt TEXT NOT NULL,
    open_positions   INTEGER NOT NULL
) STRICT;
CREATE INDEX equity_snapshots_by_time ON equity_snapshots (time);

-- Durable JSON state: governor, symbol stats, lifecycle stages, Q-table. `updated_at` is the
-- database's own clock: audit metadata only, never read back by the program.
CREATE TABLE state (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) STRICT;
