"""Quantum Trader: a risk-managed, ML-driven trading daemon for Binance USD-M perpetual futures.

Data flow: market data → signals → approval chain (gates) → sizing → execution → monitor,
with every decision persisted (storage) and logged (log). `app.py` is the composition root.
"""

__version__ = "0.1.0"
