"""N-HiTS forecaster (PyTorch), compact and faithful to the paper's structure.

Challu, Olivares, Oreshkin, Garza, Mergenthaler-Canseco, Dubrawski: "N-HiTS: Neural
Hierarchical Interpolation for Time Series Forecasting", AAAI 2023 (arXiv:2201.12886).

Stacks of MLP blocks; block l max-pools its input with kernel k_l (multi-rate signal
sampling), an MLP emits a full backcast and ⌈H / r_l⌉ forecast coefficients that are linearly
interpolated up to the horizon H (hierarchical interpolation: coarse blocks model the slow
part, fine blocks the rest). Blocks are chained by the backcast residual and their forecasts
summed. The volume channel enters every block as a historical exogenous input (pooled like
the target); only the price channel is backcast and forecast.

Input (B, 2, L) from windows.py; output (B, H): the price channel's next H steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional

DEFAULT_PARAMS: dict[str, Any] = {
    "pool_kernels": [8, 4, 1],
    "downsample": [4, 2, 1],
    "hidden": 128,
    "layers": 2,
}


class NHiTSBlock(nn.Module):
    """One block: pool → MLP → (backcast over L, interpolated forecast over H)."""

    def __init__(
        self, lookback: int, horizon: int, kernel: int, ratio: int, hidden: int, layers: int
    ) -> None:
        super().__init__()
        self.lookback, self.horizon = lookback, horizon
        self.pool = nn.MaxPool1d(kernel, stride=kernel, ceil_mode=True)
        pooled = math.ceil(lookback / kernel)
        self.n_coefficients = max(1, math.ceil(horizon / ratio))
        sizes = [2 * pooled, *([hidden] * layers)]
        mlp: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(sizes):
            mlp += [nn.Linear(width_in, width_out), nn.ReLU()]
        self.mlp = nn.Sequential(*mlp)
        self.theta = nn.Linear(hidden, lookback + self.n_coefficients)

    def forward(
        self, residual: torch.Tensor, exogenous: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pool(torch.stack([residual, exogenous], dim=1))
        theta = self.theta(self.mlp(pooled.flatten(1)))
        backcast = theta[:, : self.lookback]
        knots = theta[:, self.lookback :].unsqueeze(1)
        forecast = functional.interpolate(
            knots, size=self.horizon, mode="linear", align_corners=True
        )
        return backcast, forecast.squeeze(1)


class NHiTS(nn.Module):
    """The stack of blocks; a doubly residual network over the price channel."""

    def __init__(
        self,
        lookback: int,
        horizon: int,
        pool_kernels: Sequence[int],
        downsample: Sequence[int],
        hidden: int,
        layers: int,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            NHiTSBlock(lookback, horizon, kernel, ratio, hidden, layers)
            for kernel, ratio in zip(pool_kernels, downsample, strict=True)
        )

    @classmethod
    def from_params(cls, lookback: int, horizon: int, params: Mapping[str, Any]) -> NHiTS:
        return cls(
            lookback,
            horizon,
            list(params["pool_kernels"]),
            list(params["downsample"]),
            int(params["hidden"]),
            int(params["layers"]),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        residual, exogenous = windows[:, 0], windows[:, 1]
        forecast = torch.zeros(windows.shape[0], 1, device=windows.device)
        for block in self.blocks:
            backcast, block_forecast = block(residual, exogenous)
            residual = residual - backcast
            forecast = forecast + block_forecast
        return forecast
