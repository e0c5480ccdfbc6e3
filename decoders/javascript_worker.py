"""The sandbox process's request loop: the tenants' isolates of one vendor JavaScript codec.

`decoders.javascript_process` starts it through `decoders/javascript_launcher.py`, which
loads these modules without the `decoders` package's own imports: the process imports
nothing of lorakom, so it starts in the time it takes to load V8, and nothing of the
platform is within reach of the process a hostile script runs in. Its isolates live in
`decoders.javascript_isolate`, the cap on its memory in `decoders.javascript_memory`.

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

import json
import os
import sys
from collections import OrderedDict
from typing import Any

from decoders.javascript_isolate import IsolateEngine, ScriptFailure, failure_answer
from decoders.javascript_memory import DataBudget


def _frames(sent: list[list[Any]]) -> list[tuple[int, bytes]]:
    """Frames as the parent sends them, `[fPort, payload in hex]` (far quicker to pass than
    lists of numbers)."""
    return [(int(port), bytes.fromhex(payload)) for port, payload in sent]


class Worker:
    """The tenants' isolates of one script inside a process with a bounded data segment."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._max_isolates = int(config["max_isolates"])
        self._engines: OrderedDict[str, IsolateEngine] = OrderedDict()
        self._budget = DataBudget(int(config["memory_limit_bytes"]))
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
                answers = "[" + failure_answer(str(exc)) + "]"
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
