"""Every error genforge raises on purpose.

The library raises these; only `genforge.cli` turns them into one readable line and an
exit status. Anything else that escapes is a bug, and the CLI says so.
"""


class GenforgeError(Exception):
    """Base class: the message is written for the person at the keyboard."""


class DataError(GenforgeError):
    """A data set could not be found, read or checked (wrong magic, truncated, empty folder)."""


class DataNotFound(DataError):
    """No file of a data set was found in any of the places genforge looks."""


class UnknownName(GenforgeError):
    """An unknown model, data set or option value."""


class RunError(GenforgeError):
    """A run directory is missing, not a run, or its checkpoint does not fit its config."""


class TrainingDiverged(GenforgeError):
    """A loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingInterrupted(GenforgeError):
    """Training stopped by Ctrl-C after a checkpoint was written."""
