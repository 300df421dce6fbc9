"""What every other package of ``dreamer`` may share: it imports nothing else of ours.

- ``configtree``: overrides, JSON round trip and range checks of frozen config trees;
- ``config``: the ``env`` and ``run`` sections every agent's config holds;
- ``errors``: the errors that stop a run with one message;
- ``priorities``: proportional prioritised sampling (EfficientZero's and DQN's replays);
- ``shift``: random shifts of image windows (EfficientZero's and DQN's augmentation).
"""
