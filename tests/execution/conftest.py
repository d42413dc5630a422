"""Fixtures for the ccxt adapter tests: the loopback Binance stand-in (tests/loopback)."""

from loopback.fixtures import exchange, loopback

__all__ = ["exchange", "loopback"]
