"""Vendor JavaScript codecs, run in an embedded V8 sandbox (mini-racer) in a child process per script.

Why a process: V8 counts an isolate's heap against its limit, but not ArrayBuffer
memory, and mini-racer offers no limit on the array-buffer allocator; in-process, one
call could allocate gigabytes, and calls holding buffers in globals grew the process
without end. Each script's process runs with a data-segment limit
(`SandboxLimits.memory_limit_bytes` above what V8 itself needs), so an allocation beyond
it fails in the script as a `RangeError`, and where V8 itself finds no memory only that
process dies; the next call starts another. A process can also really be stopped: a call
V8 cannot interrupt (a long built-in) is ended by ending its process, so no thread keeps
burning CPU after its caller got the timeout. The child is `decoders/javascript_worker.py`,
started as a plain script with an empty environment: it imports nothing of the platform.

Tenancy: scripts are shared by municipalities, so each call names its tenant and runs in
that tenant's own isolate inside the script's process; no global state of one town's
calls is visible to another's (see the worker for the cost of stricter choices). Several
towns' batches travel in one round trip (`decode_groups`).

Cost: a round trip to the process per call (a batch is one call), and 30-50 MiB per
script process; a process unused for `idle_stop_s` is ended and started again on demand.

Limits: each call has a wall-clock limit that includes its wait for the script (calls to
one script run one at a time); at most `max_waiting_calls` may wait, further calls are
refused at once, so a runaway script costs its callers a bounded delay and never holds up
other scripts, which have processes of their own. A batch gets one call's time limit in
all; when it fails as a whole, its frames run alone with their own limits until
`BATCH_RUNAWAYS` of them have run into theirs. Beyond the worker's own limits, the parent
ends a process that does not answer within the call's allowance plus `_GRACE_S`.

Failures come back as `DecodeError` with the JavaScript message and, where V8
knows it, the line in the script.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from domain.errors import DecodeError
from domain.uplink import JsonObject

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("javascript_worker.py")

# Where a script exception happened, from the stack V8 wrote (the worker names the script so).
_STACK_LOCATION = re.compile(r"codec\.js:(\d+)")

# Frames of a failed batch that may run into their time limit alone before the rest of the
# batch fails unrun: a batch then costs at most one limit more than this many.
BATCH_RUNAWAYS = 2

# What the parent allows per frame of a batch that runs frame by frame (each is one call into V8).
_PER_FRAME_S = 0.01

# What the parent adds to a call's allowance before it ends an unanswering process: the
# worker's own grace for freeing an interrupted isolate, and the answer's way back.
_GRACE_S = 1.0

# How long `close` waits for a process to leave on its own before ending it.
_CLOSE_WAIT_S = 2.0


class ScriptStyle(StrEnum):
    DEVICE_REPOSITORY = "decodeUplink"  # also ChirpStack v4: decodeUplink(input) -> {data, warnings, errors}
    CHIRPSTACK_V3 = "Decode"  # Decode(fPort, bytes, variables) -> object
    TTN_V2 = "Decoder"  # The Things Network v2 / TTS v2 and older ChirpStack: Decoder(bytes, port) -> object


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


@dataclass(frozen=True, slots=True)
class ScriptResult:
    data: JsonObject
    warnings: tuple[str, ...] = ()


_LIVE_CODECS: weakref.WeakSet[JavaScriptCodec] = weakref.WeakSet()


@atexit.register
def _close_live_codecs() -> None:
    """End every script process while the interpreter still runs, so none outlives it."""
    for codec in list(_LIVE_CODECS):
        codec.close()


class _IdleReaper:
    """One daemon thread for all codecs: ends script processes unused for their `idle_stop_s`.

    A registered script keeps its process while it is used; an installation has scripts
    that decode a few uplinks a day, and each idle process would hold its memory for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._changed = threading.Event()

    def watch(self) -> None:
        """Called for each new codec: its idle time may be shorter than the one slept on."""
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
        """Stop the idle processes; the shortest idle time of all (no codec is held while sleeping)."""
        codecs = list(_LIVE_CODECS)
        for codec in codecs:
            codec.stop_if_idle()
        return min([codec.limits.idle_stop_s for codec in codecs], default=_IDLE_CHECK_S)


# How often, at most, the idle reaper looks.
_IDLE_CHECK_S = 30.0
_REAPER = _IdleReaper()


class _ProcessGone(Exception):
    """The script's process ended without answering (out of memory, or ended for its time)."""


class JavaScriptCodec:
    """One codec script in a process of its own; thread-safe, one call at a time per script."""

    def __init__(self, script: str, style: ScriptStyle, limits: SandboxLimits | None = None) -> None:
        self.style = style
        self.limits = limits or SandboxLimits()
        self._config = json.dumps(
            {
                "script": script,
                "style": style.value,
                "call_time_limit_s": self.limits.call_time_limit_s,
                "load_time_limit_s": self.limits.load_time_limit_s,
                "heap_limit_bytes": self.limits.heap_limit_bytes,
                "memory_limit_bytes": self.limits.memory_limit_bytes,
                "max_isolates": self.limits.max_isolates,
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
        _LIVE_CODECS.add(self)
        with self._lock:
            self._start()
        _REAPER.watch()

    def decode(
        self,
        f_port: int,
        payload: bytes,
        variables: Mapping[str, Any] | None = None,
        *,
        tenant: str = "",
    ) -> ScriptResult:
        """Decode one payload in `tenant`'s isolate (a municipality; '' for tools without one)."""
        request = {
            "tenant": tenant,
            "frames": [[int(f_port), payload.hex()]],
            "variables": variables,
            "single": True,
        }
        answer = self._exchange(request, [tenant], self.limits.call_time_limit_s)[0]
        return _result(answer)

    def decode_many(
        self,
        frames: Sequence[tuple[int, bytes]],
        variables: Mapping[str, Any] | None = None,
        *,
        tenant: str = "",
    ) -> list[ScriptResult | DecodeError]:
        """Decode a batch in one call, within one call's time limit; when the batch fails as a
        whole, each frame runs alone with its own limit, until `BATCH_RUNAWAYS` have run into it."""
        return self.decode_groups([(tenant, frames)], variables)[0]

    def decode_groups(
        self,
        groups: Sequence[tuple[str, Sequence[tuple[int, bytes]]]],
        variables: Mapping[str, Any] | None = None,
    ) -> list[list[ScriptResult | DecodeError]]:
        """`decode_many` for several tenants' batches in one exchange with the script's process
        (an ingest batch holds many towns' uplinks; one exchange each would cost a round trip
        per town). Each batch runs in its tenant's isolate, with its own time limits."""
        groups = [(tenant, frames) for tenant, frames in groups]
        if not any(frames for _, frames in groups):
            return [[] for _ in groups]
        limits = self.limits
        run_time_s = sum(
            limits.call_time_limit_s * (1 + BATCH_RUNAWAYS) + _PER_FRAME_S * len(frames)
            for _, frames in groups
        )
        request = {
            "groups": [
                [tenant, [[int(port), payload.hex()] for port, payload in frames]]
                for tenant, frames in groups
            ],
            "variables": variables,
            "max_runaways": BATCH_RUNAWAYS,
        }
        try:
            answered = self._exchange(request, [tenant for tenant, _ in groups], run_time_s)
        except DecodeError as exc:
            return [[exc for _ in frames] for _, frames in groups]
        results: list[list[ScriptResult | DecodeError]] = []
        for (_, frames), answers in zip(groups, answered, strict=False):
            if not isinstance(answers, list) or len(answers) != len(frames):
                results.append(
                    [DecodeError("the sandbox answered for another number of frames") for _ in frames]
                )
            else:
                results.append([_result_or_error(answer) for answer in answers])
        if len(results) != len(groups):
            raise DecodeError("the sandbox answered for another number of batches")
        return results

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

    def _exchange(self, request: dict[str, Any], tenants: Sequence[str], run_time_s: float) -> list[Any]:
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
            [sys.executable, "-I", str(WORKER_SCRIPT)],
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


def _result(answer: object) -> ScriptResult:
    """One frame's answer from the sandbox: the glue's `{data, warnings, errors}` or its
    `{error, stack}` for a script exception, or the sandbox's own `{failure}`."""
    if not isinstance(answer, dict):
        raise DecodeError("the sandbox answered with no object")
    if "failure" in answer:
        raise DecodeError(str(answer["failure"]))
    if "error" in answer:
        raise _script_error(str(answer["error"]), str(answer.get("stack", "")))
    errors = answer.get("errors") or []
    if errors:
        raise DecodeError("codec reported: " + "; ".join(str(error) for error in errors))
    data = answer.get("data")
    if not isinstance(data, dict):
        raise DecodeError(f"codec returned {type(data).__name__} as data, not an object")
    return ScriptResult(data, tuple(str(warning) for warning in answer.get("warnings") or ()))


def _script_error(message: str, stack: str = "") -> DecodeError:
    found = _STACK_LOCATION.search(stack)
    where = f" (line {found.group(1)})" if found else ""
    return DecodeError(f"script error: {message}{where}")


def _result_or_error(answer: object) -> ScriptResult | DecodeError:
    try:
        return _result(answer)
    except DecodeError as exc:
        return exc
