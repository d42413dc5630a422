"""`python -m quantum_trader` is the same program as the `quantum-trader` console script."""

from quantum_trader.cli import main

if __name__ == "__main__":
    main()
