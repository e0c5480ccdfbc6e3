"""The sandbox process's data-segment limit, which bounds what its scripts can allocate.

Why RLIMIT_DATA: an isolate's heap limit does not count ArrayBuffer memory, and
mini-racer offers no limit on V8's array-buffer allocator. With the whole process capped,
an allocation beyond the cap fails inside the script as a `RangeError`, and where V8
itself can get no memory the process dies and the parent starts another. RLIMIT_AS would
not do: V8 reserves far more address space than it ever uses. The limit is set after two
probe isolates (V8 reserves its code range with the first, once per process), at what the
process then uses, plus each live isolate's own machinery (thread stack and reservations,
as measured on the second probe: no memory of the script's), plus the budget; it follows
the number of live isolates.

Runs in the sandbox process, so it imports nothing of lorakom.
"""

from __future__ import annotations

import resource
from pathlib import Path

from py_mini_racer import mini_racer


class DataBudget:
    """The process's data-segment limit: what V8 uses before any script runs, plus each live
    isolate's own machinery (thread stack, reservations: measured on a probe isolate, since
    it is no memory of the script's), plus the scripts' budget.

    Probe isolates are made first because V8 reserves its code range with the first one.
    """

    def __init__(self, budget_bytes: int) -> None:
        with mini_racer():
            before = _data_segment_bytes()
            with mini_racer():
                self._per_isolate = max(_data_segment_bytes() - before, 0)
        self._base = _data_segment_bytes()
        self._budget = budget_bytes

    def allow(self, *, isolates: int) -> None:
        cap = self._base + isolates * self._per_isolate + self._budget
        resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.RLIM_INFINITY))


def _data_segment_bytes() -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0
