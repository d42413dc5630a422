-- A close-all stop (Binance's closePosition: no quantity, it closes whatever is held), placed
-- for a position no quantity stop can cover (below the symbol's minimum or off its step).
ALTER TABLE orders ADD COLUMN close_position INTEGER NOT NULL DEFAULT 0;
