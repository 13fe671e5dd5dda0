"""Model factories for tests, reached through `python:tests.helpers:NAME` like a user's own."""

import math

from torch import nn


class Exploding(nn.Module):
    """A linear classifier whose training outputs turn to NaN after `after` forward calls."""

    def __init__(self, input_shape, num_classes, after: int = 10):
        super().__init__()
        self.lin = nn.Linear(math.prod(input_shape), num_classes)
        self.calls, self.after = 0, after

    def forward(self, x):
        out = self.lin(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * float("nan")
        return out


def exploding(input_shape, num_classes, after: int = 10):
    return Exploding(input_shape, num_classes, after)


def wrong_outputs(input_shape, num_classes):
    """A model with one output too many for the data's classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes + 1))
