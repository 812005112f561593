"""Loaded only under `make test-dates`: time.sleep that survives libfaketime's clock_nanosleep bug.

Python >= 3.11 sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME); libfaketime 0.9.10 with
FAKETIME_DONT_FAKE_MONOTONIC shifts that absolute deadline by the fake offset and the kernel answers
EINVAL (wolfcw/libfaketime#426). A timed wait on an Event uses the real monotonic clock and is unaffected.
"""

import threading
import time

_real_sleep = time.sleep


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if seconds == 0:
        _real_sleep(0)
        return
    threading.Event().wait(seconds)


if "FAKETIME" in __import__("os").environ:
    time.sleep = _sleep
