"""Run `python -m broker ...` with a wall clock that jumps when a test says so.

    python tests/fault_clock.py OFFSET_FILE serve --port 0 ...

OFFSET_FILE holds a number of seconds (it may be missing or empty: 0). `time.time()` and
`time.time_ns()` return the real wall clock plus that offset, as after an NTP step or an
operator's `date -s`; `time.monotonic()` is left alone, as the kernel leaves CLOCK_MONOTONIC
alone. The offset is re-read every few milliseconds by a daemon thread, so the broker's hot path
pays only an addition.

The patch has to happen before `broker` is imported: broker.clock binds `time.time` when its
class is defined.
"""

from __future__ import annotations

import runpy
import sys
import threading
import time

POLL = 0.005  # seconds between reads of the offset file


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: fault_clock.py OFFSET_FILE BROKER_ARGS...")
    path = sys.argv[1]
    offset = [0.0]

    def read() -> None:
        try:
            with open(path) as f:
                text = f.read().strip()
            offset[0] = float(text) if text else 0.0
        except (OSError, ValueError):
            pass  # missing, or caught half-written: keep the last value

    def follow() -> None:
        while True:
            read()
            time.sleep(POLL)

    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset[0]
    time.time_ns = lambda: real_time_ns() + int(offset[0] * 1e9)
    read()
    threading.Thread(target=follow, name="fault-clock", daemon=True).start()
    sys.argv = ["broker", *sys.argv[2:]]
    runpy.run_module("broker", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
