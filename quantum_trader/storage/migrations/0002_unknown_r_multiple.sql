-- A closed trade whose initial risk is unknown has no R: r_multiple becomes NULL-able (it was
-- 0.0, a break-even trade in every R statistic). SQLite cannot drop a NOT NULL constraint, so
-- the table is rebuilt as 0001 made it but for that column.
CREATE TABLE closed_trades_new (
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
    r_multiple     REAL,
    entry_order_id TEXT NOT NULL,
    UNIQUE (symbol, entry_order_id, closed_at)
) STRICT;
-- A known risk gives 0 R only for a zero PnL: a 0.0 beside a gain or a loss was an unknown R.
INSERT INTO closed_trades_new
SELECT id, symbol, side, quantity, entry_price, exit_price, opened_at, closed_at, exit_reason,
       pnl_usdt, fees_usdt, funding_usdt,
       CASE WHEN r_multiple = 0.0 AND CAST(pnl_usdt AS REAL) != 0.0 THEN NULL ELSE r_multiple END,
       entry_order_id
FROM closed_trades;
DROP TABLE closed_trades;
ALTER TABLE closed_trades_new RENAME TO closed_trades;
CREATE INDEX closed_trades_by_close ON closed_trades (closed_at);
