"""What every command-line tool shares: the ``--config``/``--set`` arguments and the user-error exit path.

User errors (:class:`~deeplabv3.errors.UserError`: bad config keys, missing or corrupt files, checkpoint
mismatches, launch problems, and file-system faults such as a full or read-only disk) end the tool with status 2
and a one-paragraph message instead of a traceback. Every fatal error, user error or not, also goes to the run's
log file when one is open (``train.log``, ``eval.log``), so the work dir records why the run stopped.
SIGINT and SIGTERM stop a tool cleanly (training saves first; see :mod:`deeplabv3.engine.trainer`): it says
"interrupted" and exits with 128 + the signal number, 130 or 143, as a shell reports a process the signal ended.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Callable, Optional, Sequence

from .config import Config, load_config
from .distributed.launch import failed_collective
from .errors import UserError
from .runtime import log_to_files
from .workdir import file_system_error

USER_ERROR_EXIT = 2


def add_config_arguments(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    """``--config FILE`` and ``--set KEY=VALUE ...`` (dotted keys, YAML values, later ones win)."""
    parser.add_argument("--config", required=config_required, metavar="FILE",
                        help="YAML config (may inherit other files through _base_)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set model.output_stride=8 eval.scales=[0.5,1.0]")
    parser.add_argument("--verbose", action="store_true", help="debug logging, MindSpore warnings shown")


def config_from_args(args: argparse.Namespace, extra_overrides: Sequence[str] = ()) -> Config:
    """The validated config named by ``args.config`` with ``extra_overrides`` then ``--set`` applied."""
    return load_config(args.config, [*extra_overrides, *args.overrides])


def format_user_error(exc: BaseException) -> str:
    """``error: <message>``, kept as written so the names in it stay whole and searchable."""
    return f"error: {str(exc).strip() or type(exc).__name__}"


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT (which Python raises as a plain ``KeyboardInterrupt``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run a tool's ``main``; user errors become a short message on stderr and exit status 2, SIGINT and SIGTERM
    "interrupted" and 130 / 143."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        return _user_error(exc)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        message = f"interrupted ({signal.Signals(signum).name})"
        print(message, file=sys.stderr)
        log_to_files(logging.ERROR, message)
        return 128 + signum
    except Exception as exc:
        converted = file_system_error(exc) if isinstance(exc, OSError) else failed_collective(exc) or exc
        if converted is not exc:  # a full or read-only disk, a path that is a file, a peer rank that hangs
            return _user_error(converted)
        log_to_files(logging.CRITICAL, f"stopped by an unexpected error: {exc!r}", exc_info=True)
        raise


def _user_error(exc: Exception) -> int:
    message = format_user_error(exc)
    print(message, file=sys.stderr)
    log_to_files(logging.ERROR, message)
    return USER_ERROR_EXIT
