"""Market data: recorded candles and live feeds → closed bars, indicators and regimes."""
