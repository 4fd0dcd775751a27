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


class RankLost(RunError):
    """In distributed training, another rank died or stopped answering within the timeout."""


class TrainingInterrupted(GenforgeError):
    """Training stopped by Ctrl-C after a checkpoint was written."""


class ConfigError(GenforgeError, ValueError):
    """A config value a user set is of the wrong type, out of range, not finite or not one of the
    choices (config_check.py); the message names the field and what it accepts. Also a ValueError,
    as these were before they had their own type."""


class UnknownField(ConfigError, UnknownName):
    """A config field or option name that the config does not have; the message lists the valid ones."""


class OutputPathError(GenforgeError):
    """An output path genforge cannot write what was asked into (a suffix it does not write, a
    file where a folder is wanted, a parent folder that cannot be made): output_paths.py."""


class ProvenanceError(GenforgeError):
    """The signing key cannot be made, read or kept safe (provenance/keys.py), or an image to
    verify cannot be read (provenance/verify.py)."""
