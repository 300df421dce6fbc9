"""dreamer: sample-efficient model-based reinforcement learning in JAX (EfficientZero line)."""

__version__ = "0.1.0"
