"""One way for tests to wait for something that happens in the background."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05
) -> float:
    """Seconds from now until the start of the first check that held (so a slow check,
    such as a search on a busy machine, does not count against the condition); an
    AssertionError naming `what` after `timeout_s`."""
    started = time.monotonic()
    while True:
        checked_at = time.monotonic()
        if condition():
            return checked_at - started
        if checked_at - started > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)
