"""Vendor JavaScript codecs, run in an embedded V8 sandbox (mini-racer), never in a subprocess.

Isolation: every registered script gets its own V8 isolate, so a script cannot
see another codec's globals and a runaway script exhausts only its own heap.
V8 alone offers no `require`, `fetch`, `process` or file access; nothing of the
host is exposed to the script.

Reuse: the script is compiled once; each call evaluates one short expression
that hands the bytes to a glue function installed beside the script. The
engine's own thread-hopping helpers cost several thread switches per call, so
calls drive a private asyncio loop in the caller's thread instead (one switch
to the V8 thread and back). That switch still costs far more than a codec's
work (a trivial call takes as long as a real one), so `decode_many` runs a
whole batch in one switch; the registry's `decode_many` uses it for ingest and
for re-decoding history.

Limits: each call has a wall-clock limit (V8 execution is terminated), each
isolate a hard heap limit. A batch gets one call's time limit in all, not one
per frame: a runaway frame then delays its batch by one limit rather than by
one limit per frame in it. When a batch fails as a whole (time, memory, an
answer that cannot be serialised), every frame runs again alone with its own
limit, so each gets the result or error a single call would give. After a
timeout or an out-of-memory stop the isolate is thrown away and rebuilt from
the script on the next call, because the script's global state may have been
left half-updated. Known gap: a single uninterruptible built-in (e.g.
`new Array(2e8).fill(0)`) keeps its V8 thread busy until it finishes; the
caller still gets its timeout and a fresh isolate, but that thread burns CPU
until then.

Failures come back as `DecodeError` with the JavaScript message and, where V8
knows it, the line in the script.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import Any, TypeVar

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
    init_mini_racer,
    mini_racer,
)

from domain.errors import DecodeError
from domain.uplink import JsonObject

SCRIPT_NAME = "codec.js"


def _start_engine_on_the_main_thread() -> None:
    """Initialise V8 now, while importing, which happens on the main thread.

    If the engine is first started from another thread (an API request, a background
    redecode), creating a second isolate later on yet another thread crashes the whole
    process with a segmentation fault. Started on the main thread, any thread may then
    create isolates.
    """
    if threading.current_thread() is threading.main_thread():
        init_mini_racer(ignore_duplicate_init=True)


_start_engine_on_the_main_thread()

_T = TypeVar("_T")

# How long `close` waits for a discarded isolate whose V8 thread is still busy.
_CLOSE_WAIT_S = 5.0


class ScriptStyle(StrEnum):
    DEVICE_REPOSITORY = "decodeUplink"  # also ChirpStack v4: decodeUplink(input) -> {data, warnings, errors}
    CHIRPSTACK_V3 = "Decode"  # Decode(fPort, bytes, variables) -> object


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    call_time_limit_s: float = 1.0
    load_time_limit_s: float = 10.0
    heap_limit_bytes: int = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScriptResult:
    data: JsonObject
    warnings: tuple[str, ...] = ()


# Installed after the user's script. It captures JSON.stringify first so a script that
# replaces it cannot forge our answers, and reports script exceptions as values so
# that V8 unwinding never leaves the isolate in doubt.
_GLUE = """
const __lorakomGlue = (function (style) {
  const stringify = JSON.stringify;
  const describe = function (e) {
    if (e instanceof Error) return { error: e.name + ": " + e.message, stack: String(e.stack || "") };
    return { error: "uncaught " + String(e), stack: "" };
  };
  const once = function (fPort, bytes, variables) {
    try {
      if (style === "Decode") {
        if (typeof Decode !== "function") {
          return { error: "script defines no function Decode(fPort, bytes, variables)" };
        }
        return { data: Decode(fPort, bytes, variables) };
      }
      if (typeof decodeUplink !== "function") {
        return { error: "script defines no function decodeUplink(input)" };
      }
      const result = decodeUplink({ bytes: bytes, fPort: fPort, variables: variables });
      if (result === null || typeof result !== "object") {
        return { error: "decodeUplink returned " + typeof result + ", not {data, warnings, errors}" };
      }
      return { data: result.data, warnings: result.warnings || [], errors: result.errors || [] };
    } catch (e) {
      return describe(e);
    }
  };
  return {
    one: function (fPort, bytes, variables) { return stringify(once(fPort, bytes, variables)); },
    many: function (frames, variables) {
      return stringify(frames.map(function (frame) { return once(frame[0], frame[1], variables); }));
    },
  };
})(%s);
Object.defineProperty(globalThis, "__lorakom", { writable: false, configurable: false, value: __lorakomGlue
});
"""

_FIRST_LINE_LOCATION = re.compile(r"^[^\n]*?:(\d+): ([^\n]*)")
_STACK_LOCATION = re.compile(re.escape(SCRIPT_NAME) + r":(\d+)")


def _tear_down(scope: contextlib.ExitStack | None, loop: asyncio.AbstractEventLoop) -> None:
    """Free an isolate, then settle what it still sent to its loop and close the loop.

    An answer V8 delivered for a cancelled call holds a value of the isolate. Let go of
    while the isolate is being freed, such a value could end the isolate's teardown on
    the wrong thread; let go of afterwards, the engine finds no isolate and frees nothing.
    """
    try:
        if scope is not None:
            scope.close()
    finally:
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def _release_frames(error: BaseException) -> None:
    """Clear the locals of every finished frame of the failed call: those in `error`'s
    traceback (and in those of the exceptions it was raised from or during), and the
    finished frames that called them, up to the first frame still running (ours).

    The engine raises some errors inside its result callback, whose caller still holds the
    value handle; that frame is reachable only as the callback frame's caller.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            frame: FrameType | None = tb.tb_frame
            while frame is not None:
                caller = frame.f_back
                try:
                    frame.clear()
                except RuntimeError:  # still running: the rest of the stack is live
                    break
                frame = caller
            tb = tb.tb_next
        pending.extend(linked for linked in (current.__cause__, current.__context__) if linked is not None)


class _TimeLimitError(Exception):
    pass


def _script_error(message: str, stack: str = "") -> DecodeError:
    found = _STACK_LOCATION.search(stack)
    where = f" (line {found.group(1)})" if found else ""
    return DecodeError(f"script error: {message}{where}")


def _engine_error(exc: JSEvalException) -> DecodeError:
    """Errors V8 raised outside the glue's try/catch: syntax errors, top-level throws."""
    text = str(exc)
    found = _FIRST_LINE_LOCATION.match(text)
    if found is None:
        return DecodeError(f"script error: {text.strip()}")
    return DecodeError(f"script error: {found.group(2)} (line {found.group(1)})")


_LIVE_CODECS: weakref.WeakSet[JavaScriptCodec] = weakref.WeakSet()


@atexit.register
def _close_live_codecs() -> None:
    """Free every isolate while the interpreter can still run threads.

    An isolate left for garbage collection at interpreter exit is torn down while
    Python stops its threads: V8's teardown then waits for a thread that will never
    run again, and the process hangs after it has done its work (a `lorakom decode`
    that never returns). Closing them here, before that, ends the process cleanly.
    """
    for codec in list(_LIVE_CODECS):
        codec.close()


class JavaScriptCodec:
    """One compiled codec script in its own isolate; thread-safe, one call at a time."""

    def __init__(self, script: str, style: ScriptStyle, limits: SandboxLimits | None = None) -> None:
        self.style = style
        self.limits = limits or SandboxLimits()
        self._source = f"{script}\n//# sourceURL={SCRIPT_NAME}\n"
        self._glue = _GLUE % json.dumps(style.value)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._racer: MiniRacer | None = None
        self._racer_scope: contextlib.ExitStack | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._discards: list[threading.Thread] = []
        _LIVE_CODECS.add(self)
        try:
            with self._lock:
                self._load()
        except DecodeError:
            self.close()
            raise

    def decode(self, f_port: int, payload: bytes, variables: Mapping[str, Any] | None = None) -> ScriptResult:
        settings = json.dumps(variables) if variables else "{}"
        code = f"__lorakom.one({int(f_port)},[{','.join(map(str, payload))}],{settings})"
        answer = json.loads(self._run(code, self.limits.call_time_limit_s))
        return self._result(answer)

    def decode_many(
        self, frames: Sequence[tuple[int, bytes]], variables: Mapping[str, Any] | None = None
    ) -> list[ScriptResult | DecodeError]:
        """Decode a batch in one call into V8, within one call's time limit; when the batch
        fails as a whole, each frame runs alone with its own limit."""
        if not frames:
            return []
        listed = ",".join(f"[{int(port)},[{','.join(map(str, payload))}]]" for port, payload in frames)
        code = f"__lorakom.many([{listed}],{json.dumps(variables or {})})"
        try:
            answers = json.loads(self._run(code, self.limits.call_time_limit_s))
        except DecodeError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(frames):
            return [self._attempt(port, payload, variables) for port, payload in frames]
        return [self._result_or_error(answer) for answer in answers]

    def close(self) -> None:
        """Free the isolate (each discarded isolate's loop is closed by its own teardown)."""
        with self._lock:
            if self._loop.is_closed():  # closed before (a failed load, then at exit)
                return
            self._discard()
            self._loop.close()  # the fresh loop `_discard` made, never run
            if self._worker is not None:
                self._worker.shutdown(wait=False)
            for thread in [thread for thread in self._discards if thread.is_alive()]:
                thread.join(timeout=_CLOSE_WAIT_S)

    def _attempt(
        self, f_port: int, payload: bytes, variables: Mapping[str, Any] | None
    ) -> ScriptResult | DecodeError:
        try:
            return self.decode(f_port, payload, variables)
        except DecodeError as exc:
            return exc

    def _result_or_error(self, answer: object) -> ScriptResult | DecodeError:
        try:
            return self._result(answer)
        except DecodeError as exc:
            return exc

    @staticmethod
    def _result(answer: object) -> ScriptResult:
        if not isinstance(answer, dict):
            raise DecodeError("script glue returned no object")
        if "error" in answer:
            raise _script_error(str(answer["error"]), str(answer.get("stack", "")))
        errors = answer.get("errors") or []
        if errors:
            raise DecodeError("codec reported: " + "; ".join(str(error) for error in errors))
        data = answer.get("data")
        if not isinstance(data, dict):
            raise DecodeError(f"codec returned {type(data).__name__} as data, not an object")
        warnings = tuple(str(warning) for warning in answer.get("warnings") or ())
        return ScriptResult(data, warnings)

    def _run(self, code: str, time_limit_s: float) -> str:
        with self._lock:
            if self._racer is None:
                self._load()
            assert self._racer is not None
            try:
                raw = self._evaluate(self._racer, code, time_limit_s)
            except _TimeLimitError:
                self._discard()
                raise DecodeError(f"script exceeded its time limit of {time_limit_s * 1000:.0f} ms") from None
            except JSOOMException:
                self._discard()
                raise DecodeError(
                    f"script exceeded its memory limit of {self.limits.heap_limit_bytes // 2**20} MiB"
                ) from None
            except JSEvalException as exc:
                raise _engine_error(exc) from None
        if not isinstance(raw, str):
            raise DecodeError("script glue returned no text")
        return raw

    def _load(self) -> None:
        """Build a fresh isolate and compile the script into it; caller holds the lock."""
        scope = contextlib.ExitStack()

        async def open_racer() -> MiniRacer:
            return scope.enter_context(mini_racer(self._loop))

        racer = self._call_in_safe_thread(lambda: self._loop.run_until_complete(open_racer()))
        racer.set_hard_memory_limit(self.limits.heap_limit_bytes)
        self._racer, self._racer_scope = racer, scope
        try:
            self._evaluate(racer, self._source, self.limits.load_time_limit_s)
            self._evaluate(racer, self._glue, self.limits.load_time_limit_s)
        except _TimeLimitError:
            self._discard()
            raise DecodeError("script did not finish loading within its time limit") from None
        except JSOOMException:
            self._discard()
            raise DecodeError("script exceeded its memory limit while loading") from None
        except JSEvalException as exc:
            self._discard()
            raise _engine_error(exc) from None

    def _discard(self) -> None:
        """Drop the isolate; freeing it may wait for V8 to stop, so that happens off the caller's path.

        The isolate takes its event loop along and the next one gets a fresh loop: V8 may
        still answer a call cancelled on the old isolate, and that answer must not be
        settled on the new isolate's loop while the old isolate is being torn down.
        """
        scope, self._racer, self._racer_scope = self._racer_scope, None, None
        loop, self._loop = self._loop, asyncio.new_event_loop()
        thread = threading.Thread(
            target=_tear_down, args=(scope, loop), name="lorakom-js-discard", daemon=True
        )
        thread.start()
        self._discards = [*(alive for alive in self._discards if alive.is_alive()), thread]

    def _evaluate(self, racer: MiniRacer, code: str, time_limit_s: float) -> object:
        try:
            return self._call_in_safe_thread(lambda: self._evaluate_on_loop(racer, code, time_limit_s))
        except BaseException as exc:
            # The failed call's frames hold the engine's value handles. Kept alive by the
            # exception, they were freed later on the caller's path: outside this codec's
            # lock, and after a timeout while the discarded isolate was being torn down,
            # which crashed the process. They go now, under the lock, while it still lives.
            _release_frames(exc)
            raise

    def _evaluate_on_loop(self, racer: MiniRacer, code: str, time_limit_s: float) -> object:
        task = self._loop.create_task(racer.eval_cancelable(code))
        timer = self._loop.call_later(time_limit_s, task.cancel)
        try:
            return self._loop.run_until_complete(task)
        except asyncio.CancelledError:
            raise _TimeLimitError from None
        except JSTimeoutException:
            raise _TimeLimitError from None
        finally:
            timer.cancel()

    def _call_in_safe_thread(self, work: Callable[[], _T]) -> _T:
        """Run `work` here, unless this thread already runs an event loop (an async caller):
        a loop cannot be driven from inside another, so then a private worker thread drives it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return work()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lorakom-js")
        return self._worker.submit(work).result()
