"""kdpipe: distill, prune, quantize, export and benchmark a model, with measured numbers."""

__version__ = "0.1.0"
