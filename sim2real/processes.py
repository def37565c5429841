"""Processes and signals: workers that end with the process that started them, and SIGTERM taken as Ctrl-C.

A process pool's workers otherwise outlive a parent killed with SIGKILL (no cleanup runs) until their
current job ends, holding memory and cores. :func:`exit_with_parent` watches the parent's PID from a
daemon thread and ends the worker once it has been re-parented.

A SIGTERM (``kill``, a cluster scheduler's stop) ends a Python process at once by default, where Ctrl-C
raises ``KeyboardInterrupt`` and lets training save a checkpoint; :func:`sigterm_interrupts` makes the
two alike, and passes the signal on to child processes that would not otherwise receive it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def exit_with_parent(parent: int, period: float = 0.5) -> threading.Thread:
    """Starts a daemon thread that ends this process (``os._exit(1)``) once ``parent`` is no longer its parent.

    Args:
        parent: The PID of the process that started this one (pass ``os.getpid()`` from the parent).
        period: Seconds between checks.
    """
    watcher = threading.Thread(target=_watch, args=(parent, period), daemon=True, name="exit-with-parent")
    watcher.start()
    return watcher


def _watch(parent: int, period: float) -> None:
    while os.getppid() == parent:
        time.sleep(period)
    os._exit(1)


@contextlib.contextmanager
def sigterm_interrupts(children: Callable[[], Iterable[subprocess.Popen[Any]]] | None = None) -> Iterator[None]:
    """Within it, SIGTERM interrupts like Ctrl-C (``KeyboardInterrupt``), so training saves a checkpoint before
    it exits; a second SIGTERM meets the previous handler (by default: exit at once). Only the main thread can
    take signals: elsewhere this does nothing.

    Args:
        children: The child processes running at the moment (e.g. trainings started with ``subprocess``): each
            is sent the SIGTERM first. A terminal's Ctrl-C reaches a whole process group; a ``kill PID`` reaches
            that process alone, and its children would go on training.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)
        for child in children() if children else ():
            if child.poll() is None:
                child.send_signal(signum)
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
