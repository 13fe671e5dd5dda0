"""Built-in architectures: small enough to train on a laptop CPU, plain enough to export and prune."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, input_shape, num_classes: int, hidden=(32,), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """conv-relu-pool blocks, then one hidden dense layer. Needs (C, H, W) inputs."""

    def __init__(self, input_shape, num_classes: int, channels=(32, 64), hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"builtin:cnn needs image inputs (C, H, W); the data has shape {tuple(input_shape)}")
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for out in channels:
            blocks += [nn.Conv2d(c, int(out), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = int(out), h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"builtin:cnn: {len(channels)} pooling blocks are too many for {input_shape[1:]} images")
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


BUILTIN = {"mlp": MLP, "cnn": CNN}
