"""Backtest report: a finished backtest's database → statistics, halts, charts, report.json,
one self-contained report.html and the terminal summary; written atomically (outputs.py)."""
