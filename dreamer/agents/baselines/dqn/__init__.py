"""DQN family: ``config``, ``networks``, ``learning``, ``replay`` and ``builder``."""
