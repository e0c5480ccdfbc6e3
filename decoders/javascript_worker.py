"""The child process that runs one vendor JavaScript codec; `decoders.javascript` drives it.

Run as a script (`python -I javascript_worker.py`), not as part of the package: it imports
nothing of lorakom, so it starts in the time it takes to load V8, and nothing of the
platform is within reach of the process a hostile script runs in.

Why a process of its own: an isolate's heap limit does not count ArrayBuffer memory, and
mini-racer offers no limit on V8's array-buffer allocator. So the whole process gets a
data-segment limit (RLIMIT_DATA): an allocation beyond it fails inside the script as a
`RangeError`, and where V8 itself can get no memory the process dies and the parent
starts another. RLIMIT_AS would not do: V8 reserves far more address space than it ever
uses. The limit is set after two probe isolates (V8 reserves its code range with the
first, once per process), at what the process then uses, plus each live isolate's own
machinery (thread stack and reservations, as measured on the second probe: no memory of
the script's), plus the budget; it follows the number of live isolates.

Tenancy: scripts are shared by municipalities, and a script's global state would carry
one town's payloads into another town's calls. Each tenant (the parent names it) gets
isolates of its own, made on first use, and the least recently used one is dropped once
`max_isolates` are alive. A new context per call would be stricter still, but
mini-racer offers one context per isolate (and V8's ShadowRealm needs an embedder hook it
lacks), so that would cost a new isolate and a reload of the script (about 9 ms) on every
call; no town relies on state kept between its own calls.

Protocol, one JSON document per line both ways. The first line is the configuration;
the worker answers `{"ready": true}` or `{"error": ...}` once the script has loaded into
a first isolate. Then each request, one frame `{"tenant", "frames": [[fPort, hex]]],
"variables", "single": true}` or batches of several tenants `{"groups": [[tenant,
frames]...], "variables", "max_runaways"}`, gets `{"answers": [...]}` (an array per
batch): per frame, the glue's answer as V8 wrote it (passed on unparsed, the parent
reads it once) or `{"failure"}` where the sandbox stopped the frame. After a timeout
whose isolate cannot be freed promptly (a built-in that V8 cannot interrupt), the worker
answers (saying `"exiting"`) and exits: the parent starts a fresh one, and no thread
keeps burning CPU for a call nobody waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

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
                answers.append(_failure(f"not run: {runaways} runaway frames spent the batch's time"))
                continue
            try:
                answers.append(self.decode(port, payload, variables))
            except TimeLimitFailure as exc:
                runaways += 1
                answers.append(_failure(str(exc)))
            except ScriptFailure as exc:
                answers.append(_failure(str(exc)))
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


def _frames(sent: list[list[Any]]) -> list[tuple[int, bytes]]:
    """Frames as the parent sends them, `[fPort, payload in hex]` (far quicker to pass than
    lists of numbers)."""
    return [(int(port), bytes.fromhex(payload)) for port, payload in sent]


def _failure(message: str) -> str:
    """An answer for a frame the sandbox could not run to its end (time, memory, load)."""
    return json.dumps({"failure": message})


def _data_segment_bytes() -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


class Worker:
    """The tenants' isolates of one script inside a process with a bounded data segment."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._max_isolates = int(config["max_isolates"])
        self._engines: OrderedDict[str, IsolateEngine] = OrderedDict()
        self._budget = _DataBudget(int(config["memory_limit_bytes"]))
        self._spare: IsolateEngine | None = None
        self._budget.allow(isolates=1)
        self._spare = self._make_engine()  # loads the script once: validation

    def call(self, request: dict[str, Any]) -> tuple[str, bool]:
        """The answers (a JSON array's text), and whether the process must end (an isolate
        could not be stopped). A request is one frame of one tenant (`single`) or batches of
        several tenants (`groups`); for those the answer is an array per batch."""
        variables = request.get("variables")
        if request.get("single"):
            engine = self._ready_engine(str(request["tenant"]))
            port, payload = _frames(request["frames"])[0]
            try:
                answers = "[" + engine.decode(port, payload, variables) + "]"
            except ScriptFailure as exc:
                answers = "[" + _failure(str(exc)) + "]"
            return answers, engine.stuck()
        batches: list[str] = []
        used: list[IsolateEngine] = []
        for tenant, frames in request["groups"]:
            engine = self._ready_engine(str(tenant))
            used.append(engine)
            batches.append(engine.decode_many(_frames(frames), variables, int(request["max_runaways"])))
        return "[" + ",".join(batches) + "]", any(engine.stuck() for engine in used)

    def _ready_engine(self, tenant: str) -> IsolateEngine:
        engine = self._engine(tenant)
        # Room for the isolates alive and one more: after a timeout the engine makes a new
        # isolate while the old one may still be being freed.
        self._budget.allow(isolates=self._isolates() + 1)
        return engine

    def _isolates(self) -> int:
        engines = [*self._engines.values(), *([self._spare] if self._spare is not None else [])]
        return sum(engine.isolates() for engine in engines)

    def _engine(self, tenant: str) -> IsolateEngine:
        engine = self._engines.get(tenant)
        if engine is not None:
            self._engines.move_to_end(tenant)
            return engine
        while len(self._engines) >= self._max_isolates:
            _, oldest = self._engines.popitem(last=False)
            oldest.close()
        if self._spare is not None:  # made at start; nothing ran in it but the script's top level
            engine, self._spare = self._spare, None
        else:
            self._budget.allow(isolates=self._isolates() + 1)
            engine = self._make_engine()
        self._engines[tenant] = engine
        return engine

    def _make_engine(self) -> IsolateEngine:
        return IsolateEngine(
            self._config["script"],
            self._config["style"],
            call_time_limit_s=float(self._config["call_time_limit_s"]),
            load_time_limit_s=float(self._config["load_time_limit_s"]),
            heap_limit_bytes=int(self._config["heap_limit_bytes"]),
        )


class _DataBudget:
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


def _send(out: Any, line: str) -> None:
    out.write(line.encode() + b"\n")
    out.flush()


def main() -> None:
    read, out = sys.stdin.buffer, sys.stdout.buffer
    config = json.loads(read.readline())
    try:
        worker = Worker(config)
    except ScriptFailure as exc:
        _send(out, json.dumps({"error": str(exc)}))
        return
    _send(out, '{"ready":true}')
    for line in read:
        answers, stuck = worker.call(json.loads(line))
        if stuck:  # told, so that the parent does not mistake the exit for a crash
            _send(out, '{"answers":' + answers + ',"exiting":true}')
            break
        _send(out, '{"answers":' + answers + "}")
    # Nothing to clean up, and freeing isolates while the interpreter stops its threads can hang.
    os._exit(0)


if __name__ == "__main__":
    main()
