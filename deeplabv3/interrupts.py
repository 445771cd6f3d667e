"""Keep Ctrl-C a SIGINT in a process that runs MindSpore graphs.

MindSpore installs its own C-level SIGINT handler at every graph run, which turns the signal into
``kill(getpid(), SIGTERM)``; Python's handler never sees it, so a Ctrl-C during a step or an evaluation batch
reported itself as SIGTERM (exit 143). :func:`take_sigint` blocks SIGINT in every thread instead (it must run
before anything imports MindSpore, which starts a thread of its own at import) and lets one thread wait for it and
hand it to the main thread's Python handler, whatever C handler MindSpore has installed meanwhile. SIGTERM is left
as it is. A blocked signal stays blocked across ``fork``/``exec``: a child that should stop on Ctrl-C calls
:func:`release_sigint` first.
"""
from __future__ import annotations

import _thread
import signal
import threading

_taken = False


def take_sigint() -> None:
    """Route SIGINT through a waiting thread to the main thread's Python handler (once per process)."""
    global _taken
    if _taken or threading.current_thread() is not threading.main_thread():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    threading.Thread(target=_forward, name="sigint", daemon=True).start()
    _taken = True


def release_sigint() -> None:
    """Deliver SIGINT to this thread again (a child process that inherited :func:`take_sigint`'s mask)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _forward() -> None:
    while True:
        _thread.interrupt_main(signal.sigwait({signal.SIGINT}))
