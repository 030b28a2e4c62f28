"""Errors a user can fix, each naming the file, field or row at fault. The bottom layer: imports nothing."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message names the place."""


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and row."""


class MissingExtra(ConfigError):
    """An optional dependency a run needs is not installed; the message names the extra to install."""


class DamagedFile(ConfigError):
    """A file a run reads back (checkpoint, journal, config, results) is damaged; the message names it and
    what to do."""


class WorkflowError(ConfigError):
    """The workflow raised on every sample of a validation: a bug in it, not a prompt to improve."""


def short_error(err: BaseException) -> str:
    """`Type: message` with the bare type name, on one line: what an error sample records of its exception."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def last_line(err: BaseException) -> str:
    """`Type: message`, as the last line of a traceback shows it."""
    import traceback

    return traceback.format_exception_only(type(err), err)[-1].strip()
