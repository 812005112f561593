"""Loaded only under `make test-dates`: time.sleep that survives libfaketime's clock_nanosleep bug.

Python >= 3.11 sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME); libfaketime 0.9.10 with
FAKETIME_DONT_FAKE_MONOTONIC shifts that absolute deadline by the fake offset and the kernel answers
EINVAL (wolfcw/libfaketime#426). A timed wait on an Event uses the real monotonic clock and is unaffected.
"""

import os
import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if seconds == 0:
        os.sched_yield()  # even sleep(0) goes through clock_nanosleep
        return
    threading.Event().wait(seconds)


if "FAKETIME" in os.environ:
    time.sleep = _sleep
