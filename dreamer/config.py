"""EfficientZero's config records, at the import path they had before the agents got folders.

The records live in ``dreamer.agents.efficientzero.config`` (the shared ``env`` and ``run``
sections in ``dreamer.core.config``, the config-tree machinery in ``dreamer.core.configtree``);
this module re-exports them so that ``from dreamer.config import Config, apply_overrides``
keeps working. See docs/architecture.md for what moved where.
"""

from dreamer.agents.efficientzero.config import *  # noqa: F403
from dreamer.agents.efficientzero.config import __all__  # noqa: F401
