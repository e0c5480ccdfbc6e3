"""A codec script's sandbox process, from the parent's side: its start, turns, exchanges and end.

Why a process: V8 counts an isolate's heap against its limit, but not ArrayBuffer
memory, and mini-racer offers no limit on the array-buffer allocator; in-process, one
call could allocate gigabytes, and calls holding buffers in globals grew the process
without end. Each script's process runs with a data-segment limit
(`SandboxLimits.memory_limit_bytes` above what V8 itself needs), so an allocation beyond
it fails in the script as a `RangeError`, and where V8 itself finds no memory only that
process dies; the next call starts another. A process can also really be stopped: a call
V8 cannot interrupt (a long built-in) is ended by ending its process, so no thread keeps
burning CPU after its caller got the timeout. The child runs `decoders.javascript_worker`,
started by path through `decoders/javascript_launcher.py` with an empty environment: it
imports nothing of the platform.

Cost: a round trip to the process per call (a batch is one call), and 30-50 MiB per
script process; a process unused for `idle_stop_s` is ended and started again on demand.

Turns: calls to one script run one at a time, and each call's wait for its turn counts
against its time limit; at most `max_waiting_calls` may wait, further calls are refused
at once. Beyond the worker's own limits, the parent ends a process that does not answer
within the call's allowance plus `_GRACE_S`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import DecodeError

# The JS codecs' logger, as before the process had a module of its own: log filters name it.
log = logging.getLogger("decoders.javascript")

LAUNCHER_SCRIPT = Path(__file__).with_name("javascript_launcher.py")

# What the parent adds to a call's allowance before it ends an unanswering process: the
# worker's own grace for freeing an interrupted isolate, and the answer's way back.
_GRACE_S = 1.0

# How long `close` waits for a process to leave on its own before ending it.
_CLOSE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    call_time_limit_s: float = 1.0
    load_time_limit_s: float = 10.0
    heap_limit_bytes: int = 128 * 1024 * 1024
    memory_limit_bytes: int = 256 * 1024 * 1024
    """All data a script's process may hold beyond V8's own needs: heaps and ArrayBuffers."""
    max_waiting_calls: int = 8
    """Calls that may wait for a busy script; more are refused at once."""
    idle_stop_s: float = 300.0
    """A script's process unused this long is ended (some 30-50 MiB each); the next call starts it again."""
    max_isolates: int = 32
    """Tenants with a live isolate in one script's process (the installation has 29 towns); the
    least recently used goes first. Each costs some 2 MiB."""


_LIVE_PROCESSES: weakref.WeakSet[ScriptProcess] = weakref.WeakSet()


@atexit.register
def _close_live_processes() -> None:
    """End every script process while the interpreter still runs, so none outlives it."""
    for process in list(_LIVE_PROCESSES):
        process.close()


class _IdleReaper:
    """One daemon thread for all scripts: ends script processes unused for their `idle_stop_s`.

    A registered script keeps its process while it is used; an installation has scripts
    that decode a few uplinks a day, and each idle process would hold its memory for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._changed = threading.Event()

    def watch(self) -> None:
        """Called for each new script process: its idle time may be shorter than the one slept on."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lorakom-js-idle", daemon=True)
                self._thread.start()
        self._changed.set()

    def _run(self) -> None:
        while True:
            self._changed.clear()
            shortest = self._sweep()
            self._changed.wait(timeout=max(min(shortest / 2, _IDLE_CHECK_S), 0.05))

    @staticmethod
    def _sweep() -> float:
        """Stop the idle processes; the shortest idle time of all (no process is held while sleeping)."""
        processes = list(_LIVE_PROCESSES)
        for process in processes:
            process.stop_if_idle()
        return min([process.limits.idle_stop_s for process in processes], default=_IDLE_CHECK_S)


# How often, at most, the idle reaper looks.
_IDLE_CHECK_S = 30.0
_REAPER = _IdleReaper()


class _ProcessGone(Exception):
    """The script's process ended without answering (out of memory, or ended for its time)."""


class ScriptProcess:
    """One codec script's sandbox process, started again when it ended; thread-safe, one call at a time."""

    def __init__(self, script: str, style: str, limits: SandboxLimits) -> None:
        self.limits = limits
        self._config = json.dumps(
            {
                "script": script,
                "style": style,
                "call_time_limit_s": limits.call_time_limit_s,
                "load_time_limit_s": limits.load_time_limit_s,
                "heap_limit_bytes": limits.heap_limit_bytes,
                "memory_limit_bytes": limits.memory_limit_bytes,
                "max_isolates": limits.max_isolates,
            }
        ).encode()
        self._lock = threading.Lock()
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._warm: OrderedDict[str, None] = OrderedDict()  # tenants with an isolate in the process
        self._spare_ready = False  # the isolate of the start-up check waits for its first tenant
        self._closed = False
        self._last_used = time.monotonic()
        _LIVE_PROCESSES.add(self)
        with self._lock:
            self._start()
        _REAPER.watch()

    def close(self) -> None:
        """End the script's process; later calls fail."""
        with self._lock:
            self._closed = True
            self._stop()

    def stop_if_idle(self) -> None:
        """End the process if it went unused for `idle_stop_s` (the next call starts another)."""
        if not self._lock.acquire(blocking=False):
            return  # in use
        try:
            idle_s = time.monotonic() - self._last_used
            if self._process is not None and not self._closed and idle_s > self.limits.idle_stop_s:
                self._stop()
        finally:
            self._lock.release()

    def exchange(self, request: dict[str, Any], tenants: Sequence[str], run_time_s: float) -> list[Any]:
        """Send one request when it is this call's turn, and read the answer within its allowance.

        The wait for the turn counts against the call's time limit, and only so many calls
        may wait: a runaway script then costs its callers a bounded delay, not a queue.
        """
        limits = self.limits
        with self._waiting_lock:
            if self._waiting >= limits.max_waiting_calls:
                raise DecodeError(
                    f"script busy: {self._waiting} calls are waiting for it already; try again later"
                )
            self._waiting += 1
        try:
            got_turn = self._lock.acquire(timeout=limits.call_time_limit_s)
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if not got_turn:
            raise DecodeError(
                f"script busy: no turn within its time limit of {limits.call_time_limit_s * 1000:.0f} ms"
            )
        try:
            if self._closed:
                raise DecodeError("the codec was closed")
            if self._process is None or self._process.poll() is not None:
                self._stop()
                self._start()
            # A tenant new to the process needs its isolate made and the script loaded, except
            # the first: it takes the isolate the script was checked in at start.
            cold = len({tenant for tenant in tenants if tenant not in self._warm})
            if self._spare_ready and cold:
                cold -= 1
            allowance = run_time_s + _GRACE_S + limits.load_time_limit_s * cold
            try:
                self._send(request)
                reply = self._receive(time.monotonic() + allowance)
            except TimeoutError:
                self._stop(at_once=True)
                raise DecodeError(
                    f"script exceeded its time limit of {limits.call_time_limit_s * 1000:.0f} ms"
                ) from None
            except _ProcessGone as gone:
                self._stop()
                raise DecodeError(
                    f"script exceeded its memory limit of {limits.memory_limit_bytes // 2**20} MiB "
                    f"(its sandbox process ended: {gone})"
                ) from None
            self._spare_ready = False
            if reply.get("exiting"):  # it could not stop a call in time and ends itself
                self._stop()
            for tenant in tenants:
                self._warm[tenant] = None
                self._warm.move_to_end(tenant)
            while len(self._warm) > limits.max_isolates:
                self._warm.popitem(last=False)
            answers = reply.get("answers")
            if not isinstance(answers, list):
                raise DecodeError("the sandbox gave no answers")
            return answers
        finally:
            self._last_used = time.monotonic()
            self._lock.release()

    def _start(self) -> None:
        """Start the script's process and wait until the script has loaded; caller holds the lock."""
        self._process = subprocess.Popen(  # noqa: S603  # our own interpreter and file, no shell
            [sys.executable, "-I", str(LAUNCHER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # V8's own reports of a fatal error; the parent logs the exit
            env={},
            cwd="/",
        )
        self._buffer = b""
        self._warm.clear()
        self._spare_ready = False
        try:
            self._send_raw(self._config)
            reply = self._receive(time.monotonic() + self.limits.load_time_limit_s + 10 * _GRACE_S)
        except TimeoutError:
            self._stop(at_once=True)
            raise DecodeError("script did not finish loading within its time limit") from None
        except _ProcessGone as gone:
            self._stop()
            raise DecodeError(f"script exceeded its memory limit while loading ({gone})") from None
        if "error" in reply:
            self._stop()
            raise DecodeError(str(reply["error"]))
        self._spare_ready = True

    def _stop(self, *, at_once: bool = False) -> None:
        """End the process: let it leave when its input closes, or, `at_once` (it does not
        answer), kill it without waiting for a process that is busy anyway."""
        process, self._process = self._process, None
        self._warm.clear()
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=0 if at_once else _CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.returncode not in (0, None):
            log.warning("a JS codec's sandbox process ended with exit code %s", process.returncode)

    def _send(self, request: dict[str, Any]) -> None:
        self._send_raw(json.dumps(request, separators=(",", ":")).encode())

    def _send_raw(self, line: bytes) -> None:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        try:
            process.stdin.write(line + b"\n")
            process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise _ProcessGone(self._exit_of(process)) from exc

    def _receive(self, deadline: float) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        descriptor = process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([descriptor], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                raise _ProcessGone(self._exit_of(process))
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise DecodeError("the sandbox answered with no object")
        return reply

    @staticmethod
    def _exit_of(process: subprocess.Popen[bytes]) -> str:
        try:
            code = process.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        return f"exit code {code}"
