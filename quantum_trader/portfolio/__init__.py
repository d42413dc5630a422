"""Portfolio: ledger positions + prices → views, symbol performance, correlation, VaR."""
