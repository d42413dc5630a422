"""Position monitor: open positions + mark prices → stop adjustments and exits."""
