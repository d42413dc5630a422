"""Fixtures for the ccxt adapter tests: the loopback Binance stand-in (tests/loopback)."""

import sys
from pathlib import Path

# tests/ holds the loopback package; pytest's rootdir-relative import puts only this
# directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loopback.fixtures import exchange, loopback

__all__ = ["exchange", "loopback"]
