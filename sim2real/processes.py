"""Worker processes that end with the process that started them.

A process pool's workers otherwise outlive a parent killed with SIGKILL (no cleanup runs) until their
current job ends, holding memory and cores. :func:`exit_with_parent` watches the parent's PID from a
daemon thread and ends the worker once it has been re-parented.
"""

from __future__ import annotations

import os
import threading
import time


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
