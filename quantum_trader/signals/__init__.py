"""Signals: closed bars → (symbol, BUY/SELL/HOLD, confidence, votes): rule agent or ensemble."""
