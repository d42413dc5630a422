"""The ensemble's models: gradient-boosted trees and (optional, PyTorch) forecasters."""
