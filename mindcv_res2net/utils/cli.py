"""Run a command-line entry point: one-line errors, exit codes, and a quiet interpreter exit."""
import gc
import os
import re
import sys
import warnings
from typing import Callable

from .errors import UserError

DEBUG_ENV = "MINDCV_RES2NET_DEBUG"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def error_message(exc: BaseException) -> str:
    """The message of ``exc`` on one line, without the C++ call stack MindSpore appends after a line of dashes."""
    text = re.split(r"\n?-{20,}", str(exc), maxsplit=1)[0]
    return " ".join(text.split()).rstrip(" -") or type(exc).__name__


def run_cli(main: Callable[[], int]) -> None:
    """Call ``main()`` and exit with its code.

    The errors raised on purpose for bad input (``UserError``: a flag, file, name or value) and ``OSError``
    (a file that cannot be read or written) print one line ``error: ...`` to stderr and exit 2 (set
    ``MINDCV_RES2NET_DEBUG=1`` for the traceback); any other exception is a bug and shows its traceback.
    Ctrl-C exits 130, a closed output pipe 0. Every Cell is released before the interpreter shuts down, so
    MindSpore prints no ``Cell.__del__`` noise. Python warnings print as one line, ``warning: ...``.
    """
    warnings.formatwarning = _one_line_warning
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        sys.stdout = open(os.devnull, "w")
        code = 0
    except (UserError, OSError) as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"error: {error_message(exc)}", file=sys.stderr)
        code = 2
    gc.collect()
    sys.stdout.flush()
    sys.exit(code or 0)
