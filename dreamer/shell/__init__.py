"""The run shell: everything around a training loop that is the same for every agent.

The run folder (``runlog``: config.json, metrics.csv, summary.json; ``tensorboard_events``),
its bookkeeping (``runbook``), the one-writer lock (``runlock``), signals (``signals``), orbax
checkpoints (``checkpoint``), the progress bar (``progress``), the XLA compilation cache
(``compilation``), checks of env outputs (``envcheck``), the user's and the project's imports
(``imports``) and greedy evaluation with env construction and videos (``evaluation``).

The shell imports ``dreamer.core`` only, never an agent or a loop: an agent hands it what is
its own (e.g. ``RunBook(reward_check=...)``).
"""
