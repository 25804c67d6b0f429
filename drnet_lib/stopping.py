"""Stopping long work with Ctrl-C or SIGTERM at a point where nothing is lost.

:func:`stop_requests` turns the two signals into a flag that a loop reads at a safe point: the
training loop after each iteration (``loop.ResumableLoop.fit``), ``drnet reproduce`` while it
waits for its notebooks.

A batch of notebook runs needs more. jupyter_client starts every kernel in a process session of its own, so a terminal's Ctrl-C
reaches only the ``drnet`` process, whose worker threads wait on the kernels: left alone, every
running notebook would go on to its end (hours in the ``cpu`` profile) before anything stopped.
Once a batch is asked to stop (:meth:`BatchStop.request`):

- each running kernel gets one SIGINT: a training loop finishes its iteration, saves a checkpoint
  there and stops (``loop.TrainingInterrupted``); any other cell stops with KeyboardInterrupt;
- no run starts another cell (nbclient's ``on_cell_start`` hook refuses it), which also stops a
  kernel that was between two cells, where ipykernel ignores SIGINT;
- runs still queued do not start (the caller cancels them).

A second Ctrl-C stops the kernels at once (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref


@contextlib.contextmanager
def stop_requests(enabled: bool = True, second_interrupts: bool = False):
    """While active, SIGINT and SIGTERM set ``flag["signal"]`` (the signal's name) instead of
    stopping the process, so a loop can stop where its state is whole. A second signal acts at
    once, as it would without this: Ctrl-C raises KeyboardInterrupt, SIGTERM ends the process; with
    ``second_interrupts`` a second SIGTERM raises KeyboardInterrupt too, so a caller that must
    clean up (kill a batch's kernels, print its table) can. Python lets only the main thread
    install handlers; elsewhere (or with ``enabled`` False) signals act as usual, and a signal the
    process ignores stays ignored."""
    flag = {"signal": None}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    # a signal its launcher set to be ignored (a job started with `&` or nohup ignores Ctrl-C) stays ignored
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}

    def restore():
        _restore(previous)

    def request_stop(signum, frame):
        if flag["signal"] is None:     # the first: the loop stops at its next safe point
            flag["signal"] = signal.Signals(signum).name
            return
        # The second acts now. The handlers go back only here: putting them back at the first signal
        # loses a second one already on its way (Python then prints "Signal 15 ignored due to race
        # condition" and goes on).
        restore()
        handler = previous[signum]
        if second_interrupts:
            raise KeyboardInterrupt
        if callable(handler):
            handler(signum, frame)     # Ctrl-C: KeyboardInterrupt
        else:                          # the default action (SIGTERM: the process ends)
            os.kill(os.getpid(), signum)

    for s in previous:
        signal.signal(s, request_stop)
    try:
        yield flag
    finally:
        restore()


@contextlib.contextmanager
def signals_held():
    """While active, SIGINT and SIGTERM are ignored (in the main thread; elsewhere nothing
    changes): for the seconds a stopped batch takes to collect its runs and print its table."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        _restore(previous)


def _restore(previous: dict) -> None:
    """Put back the handlers ``previous`` recorded (None: one set outside Python, so the default)."""
    for s, handler in previous.items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)


class StopRequested(RuntimeError):
    """Raised in a run's thread at the start of a cell once the batch is asked to stop."""


class BatchInterrupted(KeyboardInterrupt):
    """The batch stopped at the user's request; raised after its summary table is printed."""


class BatchStop:
    """One batch's stop switch and the kernels it must reach (see the module docstring)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._kernels: weakref.WeakSet = weakref.WeakSet()   # kernel managers, gone when their run ends
        self._signalled: set[int] = set()                    # kernel pids sent SIGINT already
        self._lock = threading.Lock()

    def papermill_options(self) -> dict:
        """Keyword arguments for ``papermill.execute_notebook`` that let this switch reach the run."""
        return {"kernel_manager_class": self._kernel_manager_class(), "on_cell_start": self.before_cell}

    def _kernel_manager_class(self):
        from jupyter_client import AsyncKernelManager   # nbclient's default manager, tracked

        kernels, lock = self._kernels, self._lock

        class TrackedKernelManager(AsyncKernelManager):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                with lock:
                    kernels.add(self)

        return TrackedKernelManager

    def before_cell(self, cell=None, cell_index=None, **_) -> None:
        if self.requested.is_set():
            raise StopRequested(f"the batch was stopped (Ctrl-C or SIGTERM) before cell {cell_index}")

    def request(self) -> None:
        """Ask every run to stop: one SIGINT to each running kernel, no new cells. Calling it
        again reaches the kernels started since, and no kernel twice."""
        self.requested.set()
        self.signal_kernels()

    def signal_kernels(self, signum: int = signal.SIGINT, again: bool = False) -> None:
        """Send ``signum`` to every started kernel (each pid once, unless ``again``): a kernel that
        started after :meth:`request` is reached by the next call. A second SIGINT would cut a
        training iteration short, so SIGINT goes once; SIGKILL is sent with ``again``."""
        with self._lock:
            kernels = list(self._kernels)
        for manager in kernels:
            pid = getattr(getattr(manager, "provisioner", None), "pid", None)
            if pid is None or (pid in self._signalled and not again):
                continue
            self._signalled.add(pid)
            with contextlib.suppress(ProcessLookupError):   # it ended meanwhile
                os.kill(pid, signum)
