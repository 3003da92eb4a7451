"""The workspace's API-key pause: when UniPost rejects the key (401/403), every account of
the workspace waits, and one probe at a time tests the key again, 1m, 2m, 4m, ... apart."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from exporter.clock import Clock
from exporter.durations import format_duration
from exporter.logs import FieldLogger

FIRST_PAUSE = 60.0
MAX_PAUSE_EXPONENT = 30


class AuthPause:
    """Decides whether the workspace is paused for its key, until when, and when it ends."""

    def __init__(
        self, clock: Clock, max_pause: float, log: FieldLogger, on_pause: Callable[[str], None]
    ) -> None:
        self.clock = clock
        self.max_pause = max_pause
        self.log = log
        self._on_pause = on_pause  # marks every account `unauthorized`
        # Set while paused. An Event only as a flag (nothing waits on it): tenacity's
        # stop_when_event_set reads it to end a poll's retries.
        self.paused = threading.Event()
        # The one probe request of this step is in flight: nothing else leaves meanwhile.
        self.probe_inflight = False
        self.until = -math.inf
        self._step = 0

    @property
    def active(self) -> bool:
        """Whether the workspace is paused for its key."""
        return self.paused.is_set()

    def rejected(self, code: str, probe: bool) -> None:
        """UniPost refused the key (or a probe got no answer): pause, or pause longer."""
        if not self.active:
            self.paused.set()
            self._step = 0
            self.log.warning(
                "UniPost rejected the API key; pausing all polling for this workspace", code=code
            )
            self._on_pause(code)
        elif probe:
            self._step += 1
        else:
            return  # a request sent before the pause began says nothing new
        pause = min(self.max_pause, FIRST_PAUSE * 2.0 ** min(self._step, MAX_PAUSE_EXPONENT))
        self.until = self.clock.monotonic() + pause
        self.log.info("workspace paused", probe_in=format_duration(pause))

    def accepted(self) -> None:
        """A probe got an answer that is not a rejection: polling resumes."""
        self._lift()
        self.log.warning("UniPost accepts the API key again; polling resumes")

    def reset(self) -> None:
        """A new connection to UniPost: no pause carries over; the next answer decides."""
        if self.active:
            self._lift()
            self.log.info("new connection to UniPost; the key pause is lifted")

    def _lift(self) -> None:
        self.paused.clear()
        self._step = 0
        self.until = -math.inf

    def new_key(self) -> None:
        """A reload brought a new key: the next probe tries it now, not after the pause."""
        if self.active:
            self._step = 0
            self.until = -math.inf
