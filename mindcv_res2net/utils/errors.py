"""The package's error class for bad input: ``UserError``, the base of every error raised on purpose for
something the user can fix (a flag, a file, a name, a value). The programs print its message on one line
and exit 2 (``utils.cli.run_cli``); any other exception is a bug and keeps its traceback."""


class UserError(ValueError):
    """Bad input the user can fix; the message is one line that names the flag, file or value and what is
    wrong. A ``ValueError``, so ``except ValueError`` in callers keeps working."""
