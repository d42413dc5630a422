"""Sizing: approved candidate + account → SizedOrder (quantity, leverage, stop, target, costs)."""
