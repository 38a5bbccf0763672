"""Pause, resume and stop a running campaign, bluesky's way, from any thread or a signal.

``request_pause(defer=True)`` pauses each station's RunEngine at its next checkpoint,
``defer=False`` at once; ``resume()`` continues; ``request_stop()`` pauses (deferred, then
immediate after ``stop_grace`` seconds) and stops the runs cleanly (``exit_status='success'``);
the cut experiments are recorded as interrupted and repeated on resume. :class:`StopOnSignals`
turns SIGTERM and a first Ctrl-C into a deferred stop, a second Ctrl-C into an immediate one.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import TracebackType
from typing import Any

from bluesky import RunEngine

__all__ = ["CampaignControl", "StopOnSignals"]


class CampaignControl:
    """Pause, resume and stop a running campaign, from any thread (or a signal handler).

    States: ``running`` -> ``paused`` (``request_pause``) -> ``running`` (``resume``), and
    ``stopping`` (``request_stop``), from which there is no way back. While paused or stopping
    no new experiment starts. Each station's RunEngine is paused the bluesky way; a worker whose
    run was paused waits here for the decision: resume the run, or stop it cleanly.
    """

    def __init__(self, stop_grace: float = 5.0) -> None:
        self.stop_grace = float(stop_grace)
        self.state = "running"
        self.reason = ""
        self._cond = threading.Condition()
        self._engines: dict[str, RunEngine] = {}
        self._timer: threading.Timer | None = None

    def register(self, name: str, RE: RunEngine) -> None:
        """Let pause and stop reach the RunEngine of station ``name``."""
        self._engines[name] = RE

    def _pause_engines(self, defer: bool) -> None:
        for RE in list(self._engines.values()):
            try:
                if RE.state == "running":
                    RE.request_pause(defer=defer)
            except Exception:  # noqa: BLE001 - idle or finishing: nothing to pause
                pass

    def request_pause(self, defer: bool = True) -> None:
        """Pause at the next checkpoint (``defer``) or now; no new experiment starts."""
        with self._cond:
            if self.state == "stopping":
                return
            self.state = "paused"
            self._cond.notify_all()
        self._pause_engines(defer)

    def resume(self) -> None:
        """Continue after a pause: paused runs resume from their last checkpoint."""
        with self._cond:
            if self.state == "paused":
                self.state = "running"
                self._cond.notify_all()

    def request_stop(self, reason: str = "stop requested", *, defer: bool = True) -> None:
        """Stop: a deferred pause, then (after ``stop_grace`` s, or at once) an immediate one;
        paused runs are stopped cleanly and their experiments repeated on resume."""
        with self._cond:
            first = self.state != "stopping"
            if first:
                self.state = "stopping"
                self.reason = reason
            self._cond.notify_all()
        if defer and first:
            self._pause_engines(True)
            self._timer = threading.Timer(self.stop_grace, self._pause_engines, args=(False,))
            self._timer.daemon = True
            self._timer.start()
        else:
            self._pause_engines(False)

    @property
    def accepting(self) -> bool:
        """True while new experiments may start (running: not paused, not stopping)."""
        return self.state == "running"

    def wait_decision(self) -> str:
        """For a worker whose run is paused: block until 'resume' or 'stop'."""
        with self._cond:
            while self.state == "paused":
                self._cond.wait(0.5)
            return "stop" if self.state == "stopping" else "resume"

    def wait_running(self, timeout: float) -> bool:
        """While paused, wait up to ``timeout`` seconds for a resume; True when running."""
        with self._cond:
            if self.state == "paused":
                self._cond.wait(timeout)
            return self.state == "running"

    def close(self) -> None:
        """Cancel the timer of a pending immediate stop."""
        if self._timer is not None:
            self._timer.cancel()


class StopOnSignals:
    """While in effect (a context manager), SIGINT and SIGTERM stop the campaign cleanly.

    SIGTERM and a first Ctrl-C request a deferred stop (at the next checkpoint); a second Ctrl-C
    within 10 s an immediate one. Signal handlers can only be installed from the main thread:
    elsewhere, or with ``enabled=False``, this does nothing.
    """

    def __init__(self, control: CampaignControl, *, enabled: bool = True) -> None:
        self.control = control
        self.enabled = enabled
        self._installed: dict[int, Any] = {}
        self._last_sigint = -float("inf")

    def __enter__(self) -> StopOnSignals:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._installed[sig] = signal.signal(sig, self.on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, old in self._installed.items():
            signal.signal(sig, old)
        self._installed.clear()

    def on_signal(self, signum: int, frame: Any) -> None:
        """The handler: SIGTERM or Ctrl-C stops at the next checkpoint; Ctrl-C twice stops now."""
        if signum == signal.SIGTERM:
            print("labflow: SIGTERM: stopping at the next checkpoint (in-flight experiments are repeated on resume)", file=sys.stderr)
            self.control.request_stop("SIGTERM", defer=True)
            return
        now = time.monotonic()
        if now - self._last_sigint < 10.0:
            print("labflow: second Ctrl-C: pausing now and stopping", file=sys.stderr)
            self.control.request_stop("Ctrl-C twice", defer=False)
        else:
            print("labflow: Ctrl-C: pausing at the next checkpoint, then stopping (Ctrl-C again within 10 s: now)", file=sys.stderr)
            self.control.request_stop("Ctrl-C", defer=True)
        self._last_sigint = now
