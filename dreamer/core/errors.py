"""Errors that stop a run with one clear message (the CLI prints it without a traceback)."""


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN/inf; the last good checkpoint is kept."""


class ObservationSpaceError(ValueError):
    """The environment's observation space is not one the networks can take."""


class RunFolderError(RuntimeError):
    """The run folder cannot be used: another process trains in it, or it cannot be written."""


class EnvOutputError(ValueError):
    """An environment returned NaN or inf; the run stops and keeps its last checkpoint."""
