"""PPO: ``config``, ``networks``, ``learning`` and ``builder``."""
