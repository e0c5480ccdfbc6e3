"""One codec script compiled into a V8 isolate, with the time and heap limits of each call.

Runs in the sandbox process (`decoders.javascript_worker` makes one engine per tenant),
so it imports nothing of lorakom: only the standard library and mini-racer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Sequence
from types import FrameType

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
    mini_racer,
)

SCRIPT_NAME = "codec.js"

# How long a discarded isolate may take to stop before the worker exits instead.
_DISCARD_GRACE_S = 0.5

# Installed after the user's script. It captures JSON.stringify first so a script that
# replaces it cannot forge our answers, and reports script exceptions as values so
# that V8 unwinding never leaves the isolate in doubt. The entry point is looked up once,
# when the glue is installed, so a script without one is refused at registration.
_GLUE = """
const __lorakomGlue = (function (style) {
  const stringify = JSON.stringify;
  const describe = function (e) {
    if (e instanceof Error) return { error: e.name + ": " + e.message, stack: String(e.stack || "") };
    return { error: "uncaught " + String(e), stack: "" };
  };
  // Looked up by name, not on globalThis: a top-level `const decodeUplink = ...` is no property of it.
  const defined = {
    decodeUplink: typeof decodeUplink === "function",
    Decode: typeof Decode === "function",
    Decoder: typeof Decoder === "function",
  };
  const signatures = {
    decodeUplink: "decodeUplink(input)",
    Decode: "Decode(fPort, bytes, variables)",
    Decoder: "Decoder(bytes, port)",
  };
  let entry = style;
  if (style === "decodeUplink" && !defined.decodeUplink && defined.Decoder) {
    entry = "Decoder";  // a TTS v2 codec registered in the default style
  }
  let problem = "";
  if (!defined[entry]) {
    const offered = Object.keys(defined).filter(function (name) { return defined[name]; });
    problem = "script defines no function " + signatures[entry] + (offered.length
      ? "; it defines " + signatures[offered[0]] + ": register it in the style " + offered[0]
      : "");
  }
  const once = function (fPort, bytes, variables) {
    try {
      if (entry === "Decode") {
        return { data: Decode(fPort, bytes, variables) };
      }
      if (entry === "Decoder") {
        return { data: Decoder(bytes, fPort) };
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
    problem: problem,
    one: function (fPort, bytes, variables) { return stringify(once(fPort, bytes, variables)); },
    many: function (frames, variables) {
      return stringify(frames.map(function (frame) { return once(frame[0], frame[1], variables); }));
    },
  };
})(%s);
Object.defineProperty(globalThis, "__lorakom", { writable: false, configurable: false, value: __lorakomGlue
});
"""

# V8's message when the process's data-segment limit refuses an ArrayBuffer.
_ALLOCATION_FAILED = "Array buffer allocation failed"

_FIRST_LINE_LOCATION = re.compile(r"^[^\n]*?:(\d+): ([^\n]*)")


class ScriptFailure(Exception):
    """A call or load that failed; the message is what the caller reads."""


class TimeLimitFailure(ScriptFailure):
    """A call stopped for its time limit."""


class _TimeLimitError(Exception):
    pass


def _engine_error(exc: JSEvalException) -> ScriptFailure:
    """Errors V8 raised outside the glue's try/catch: syntax errors, top-level throws."""
    text = str(exc)
    found = _FIRST_LINE_LOCATION.match(text)
    if found is None:
        return ScriptFailure(f"script error: {text.strip()}")
    return ScriptFailure(f"script error: {found.group(2)} (line {found.group(1)})")


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


class IsolateEngine:
    """The script compiled into one V8 isolate; one call at a time (the worker is single-threaded).

    Calls drive a private asyncio loop in the caller's thread (one switch to the V8
    thread and back) instead of the engine's thread-hopping helpers. After a timeout or
    an out-of-memory stop the isolate is thrown away and rebuilt from the script on the
    next call, because the script's global state may have been left half-updated.
    """

    def __init__(
        self,
        script: str,
        style: str,
        *,
        call_time_limit_s: float,
        load_time_limit_s: float,
        heap_limit_bytes: int,
    ) -> None:
        self.call_time_limit_s = call_time_limit_s
        self.load_time_limit_s = load_time_limit_s
        self.heap_limit_bytes = heap_limit_bytes
        self._source = f"{script}\n//# sourceURL={SCRIPT_NAME}\n"
        self._glue = _GLUE % json.dumps(style)
        self._loop = asyncio.new_event_loop()
        self._racer: MiniRacer | None = None
        self._racer_scope: contextlib.ExitStack | None = None
        self._discards: list[threading.Thread] = []
        try:
            self._load()
        except ScriptFailure:
            self.close()
            raise

    def decode(self, f_port: int, payload: bytes | Sequence[int], variables: object) -> str:
        """The glue's answer for one frame, as the JSON text V8 made (passed on unparsed)."""
        settings = json.dumps(variables) if variables else "{}"
        code = f"__lorakom.one({int(f_port)},[{','.join(map(str, payload))}],{settings})"
        return self._run(code, self.call_time_limit_s)

    def decode_many(
        self, frames: Sequence[tuple[int, Sequence[int]]], variables: object, max_runaways: int
    ) -> str:
        """A batch in one call within one call's time limit, as a JSON array of the glue's answers.

        When the batch fails as a whole, each frame runs alone with its own limit, until
        `max_runaways` frames alone have hit their limit; the rest fail unrun.
        """
        listed = ",".join(f"[{int(port)},[{','.join(map(str, payload))}]]" for port, payload in frames)
        code = f"__lorakom.many([{listed}],{json.dumps(variables or {})})"
        try:
            return self._run(code, self.call_time_limit_s)  # the glue answers one entry per frame
        except ScriptFailure:
            pass
        answers: list[str] = []
        runaways = 0
        for port, payload in frames:
            if runaways >= max_runaways:
                answers.append(failure_answer(f"not run: {runaways} runaway frames spent the batch's time"))
                continue
            try:
                answers.append(self.decode(port, payload, variables))
            except TimeLimitFailure as exc:
                runaways += 1
                answers.append(failure_answer(str(exc)))
            except ScriptFailure as exc:
                answers.append(failure_answer(str(exc)))
        return "[" + ",".join(answers) + "]"

    def isolates(self) -> int:
        """Isolates of this engine that still hold memory: the live one and those being freed."""
        return (self._racer is not None) + sum(thread.is_alive() for thread in self._discards)

    def stuck(self) -> bool:
        """Whether a discarded isolate is still running after its grace (an uninterruptible built-in)."""
        for thread in self._discards:
            thread.join(timeout=_DISCARD_GRACE_S)
        return any(thread.is_alive() for thread in self._discards)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._discard()
        self._loop.close()  # the fresh loop `_discard` made, never run
        for thread in [thread for thread in self._discards if thread.is_alive()]:
            thread.join(timeout=_DISCARD_GRACE_S)

    def _run(self, code: str, time_limit_s: float) -> str:
        if self._racer is None:
            self._load()
        assert self._racer is not None
        try:
            raw = self._evaluate(self._racer, code, time_limit_s)
        except _TimeLimitError:
            self._discard()
            raise TimeLimitFailure(
                f"script exceeded its time limit of {time_limit_s * 1000:.0f} ms"
            ) from None
        except JSOOMException:
            self._discard()
            raise ScriptFailure(
                f"script exceeded its memory limit of {self.heap_limit_bytes // 2**20} MiB"
            ) from None
        except JSEvalException as exc:
            raise _engine_error(exc) from None
        if not isinstance(raw, str):
            raise ScriptFailure("script glue returned no text")
        if _ALLOCATION_FAILED in raw:
            # The process's memory is spent, most likely held by the script's own globals:
            # the next call starts over in a fresh isolate, as after V8's own out-of-memory stop.
            self._discard()
        return raw

    def _load(self) -> None:
        scope = contextlib.ExitStack()

        async def open_racer() -> MiniRacer:
            return scope.enter_context(mini_racer(self._loop))

        racer = self._loop.run_until_complete(open_racer())
        racer.set_hard_memory_limit(self.heap_limit_bytes)
        self._racer, self._racer_scope = racer, scope
        try:
            self._evaluate(racer, self._source, self.load_time_limit_s)
            self._evaluate(racer, self._glue, self.load_time_limit_s)
            problem = self._evaluate(racer, "__lorakom.problem", self.load_time_limit_s)
        except _TimeLimitError:
            self._discard()
            raise ScriptFailure("script did not finish loading within its time limit") from None
        except JSOOMException:
            self._discard()
            raise ScriptFailure("script exceeded its memory limit while loading") from None
        except JSEvalException as exc:
            self._discard()
            raise _engine_error(exc) from None
        if problem:
            self._discard()
            raise ScriptFailure(f"script error: {problem}")

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
            return self._evaluate_on_loop(racer, code, time_limit_s)
        except BaseException as exc:
            # The failed call's frames hold the engine's value handles; they go now, while
            # the isolate still lives, not later during its teardown.
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


def failure_answer(message: str) -> str:
    """An answer for a frame the sandbox could not run to its end (time, memory, load)."""
    return json.dumps({"failure": message})
