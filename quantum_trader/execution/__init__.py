"""Execution: SizedOrder → orders on an exchange (paper or ccxt), fills, reconciliation."""
