"""PatchTST forecaster (PyTorch), compact and faithful to the paper's structure.

Nie, Nguyen, Sinthong, Kalagnanam: "A Time Series is Worth 64 Words: Long-term Forecasting
with Transformers", ICLR 2023 (arXiv:2211.14730).

- Channel independence: each channel (normalised log price, log volume) is its own univariate
  series through shared weights; (B, C, L) → (B·C, L).
- Patching: the series is end-padded by repeating its last value `stride` times and cut into
  patches of length P with stride S, each linearly embedded, plus a learned position code.
- A vanilla Transformer encoder over the patch tokens and a flatten + linear head to H steps.
Instance normalisation (RevIN) is applied by windows.py before the model. The encoder uses
LayerNorm (torch's encoder layer) where the paper prefers BatchNorm; a simplification.

Input (B, 2, L); output (B, 2, H).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

DEFAULT_PARAMS: dict[str, Any] = {
    "patch_len": 16,
    "stride": 8,
    "d_model": 32,
    "heads": 2,
    "layers": 2,
    "ff": 64,
    "dropout": 0.1,
}


class PatchTST(nn.Module):
    """Channel-independent patch transformer."""

    def __init__(
        self,
        lookback: int,
        horizon: int,
        patch_len: int,
        stride: int,
        d_model: int,
        heads: int,
        layers: int,
        ff: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.n_patches = (lookback + stride - patch_len) // stride + 1
        self.embed = nn.Linear(patch_len, d_model)
        self.position = nn.Parameter(torch.zeros(1, self.n_patches, d_model))
        nn.init.uniform_(self.position, -0.02, 0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(self.n_patches * d_model, horizon)

    @classmethod
    def from_params(cls, lookback: int, horizon: int, params: Mapping[str, Any]) -> PatchTST:
        return cls(
            lookback,
            horizon,
            int(params["patch_len"]),
            int(params["stride"]),
            int(params["d_model"]),
            int(params["heads"]),
            int(params["layers"]),
            int(params["ff"]),
            float(params["dropout"]),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, channels, lookback = windows.shape
        series = windows.reshape(batch * channels, lookback)
        padded = torch.cat([series, series[:, -1:].expand(-1, self.stride)], dim=1)
        patches = padded.unfold(1, self.patch_len, self.stride)
        tokens = self.dropout(self.embed(patches) + self.position)
        encoded = self.encoder(tokens)
        forecast = self.head(encoded.flatten(1))
        out: torch.Tensor = forecast.reshape(batch, channels, -1)
        return out
