"""The package's error class for bad input: ``UserError``, the base of every error raised on purpose for
something the user can fix (a flag, a file, a name, a value). The programs print its message on one line
and exit 2 (``utils.cli.run_cli``); any other exception is a bug and keeps its traceback.

How messages show a value (``shown``) and a list of names (``brief``): one formatter of each, for every room.
"""
from typing import Iterable

BRIEF_LIMIT = 6  # names a message lists before "and N more"


class UserError(ValueError):
    """Bad input the user can fix; the message is one line that names the flag, file or value and what is
    wrong. A ``ValueError``, so ``except ValueError`` in callers keeps working."""


def shown(value) -> str:
    """A setting as a message shows it, as a flag would take it: None as none, '' quoted, a tuple or list
    as its values separated by spaces (``--scale 0.5 1.0``), anything else as ``str`` (floats exact)."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(shown(v) for v in value)
    return "''" if isinstance(value, str) and not value else str(value)


def brief(names: Iterable[str]) -> str:
    """``names`` sorted, comma-separated, the first ``BRIEF_LIMIT`` of them and ``and N more``."""
    names = sorted(names)
    listed = ", ".join(names[:BRIEF_LIMIT])
    return listed + (f" and {len(names) - BRIEF_LIMIT} more" if len(names) > BRIEF_LIMIT else "")
