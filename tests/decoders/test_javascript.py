"""The JS codec sandbox: both script styles, limits, isolation, hostile scripts.

All scripts here are written for these tests.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from decoders.javascript import JavaScriptCodec, SandboxLimits, ScriptResult, ScriptStyle
from decoders.javascript_worker import IsolateEngine, ScriptFailure
from decoders.registry import CodecRegistry, DecodeRequest
from domain.decoding import DecoderSource
from domain.errors import DecodeError

# Battery % in byte 0, temperature int16 BE / 10 in bytes 1-2.
DEVICE_REPOSITORY_CODEC = """
function decodeUplink(input) {
  const b = input.bytes;
  if (b.length < 3) {
    return { errors: ["need 3 bytes, got " + b.length] };
  }
  const raw = (b[1] << 8) | b[2];
  const temperature = (raw > 0x7fff ? raw - 0x10000 : raw) / 10;
  const warnings = temperature < -40 ? ["below sensor range"] : [];
  return { data: { battery: b[0], temperature: temperature, port: input.fPort }, warnings: warnings };
}
"""

CHIRPSTACK_V3_CODEC = """
function Decode(fPort, bytes, variables) {
  return { battery: bytes[0], scale: variables.scale || null, port: fPort };
}
"""

FAST_LIMITS = SandboxLimits(call_time_limit_s=0.3, load_time_limit_s=2.0, heap_limit_bytes=32 * 2**20)


@pytest.fixture
def codec() -> Iterator[JavaScriptCodec]:
    compiled = JavaScriptCodec(DEVICE_REPOSITORY_CODEC, ScriptStyle.DEVICE_REPOSITORY, FAST_LIMITS)
    yield compiled
    compiled.close()


def _compile(script: str, style: ScriptStyle = ScriptStyle.DEVICE_REPOSITORY) -> JavaScriptCodec:
    return JavaScriptCodec(script, style, FAST_LIMITS)


def test_device_repository_style(codec: JavaScriptCodec) -> None:
    assert codec.decode(85, bytes([92, 0x01, 0x34])) == ScriptResult(
        {"battery": 92, "temperature": 30.8, "port": 85}
    )
    cold = codec.decode(85, bytes([10, 0xFE, 0x0C]))
    assert cold.data["temperature"] == -50.0
    assert cold.warnings == ("below sensor range",)


def test_codec_errors_become_decode_errors(codec: JavaScriptCodec) -> None:
    with pytest.raises(DecodeError, match="need 3 bytes, got 1"):
        codec.decode(85, b"\x01")


def test_chirpstack_v3_style_with_variables() -> None:
    v3 = _compile(CHIRPSTACK_V3_CODEC, ScriptStyle.CHIRPSTACK_V3)
    try:
        assert v3.decode(7, b"\x2a", {"scale": 2}).data == {"battery": 42, "scale": 2, "port": 7}
    finally:
        v3.close()


# The Things Network v2 / TTS v2 shape, as vendors still ship it: Decoder(bytes, port) returns
# the decoded object itself, and port selects the frame type.
TTN_V2_CODEC = """
function Decoder(bytes, port) {
  var decoded = {};
  if (port === 1) {
    decoded.temperature = ((bytes[0] << 24 >> 16) | bytes[1]) / 100;
    decoded.humidity = bytes[2] / 2;
    decoded.battery = bytes[3];
  } else if (port === 2) {
    decoded.alarm = bytes[0] === 1;
  }
  return decoded;
}
"""


@pytest.mark.parametrize("style", [ScriptStyle.TTN_V2, ScriptStyle.DEVICE_REPOSITORY])
def test_a_legacy_decoder_runs_with_its_return_as_the_decoded_object(style: ScriptStyle) -> None:
    """Registered as `Decoder` or in the default style (vendors hand out such files as
    "the codec"), the legacy function runs as `Decoder(bytes, port)`."""
    legacy = _compile(TTN_V2_CODEC, style)
    try:
        assert legacy.decode(1, bytes([0x09, 0x2E, 0x5A, 98])).data == {
            "temperature": 23.5,
            "humidity": 45.0,
            "battery": 98,
        }
        assert legacy.decode(2, b"\x01").data == {"alarm": True}
    finally:
        legacy.close()


@pytest.mark.parametrize(
    ("script", "style", "message"),
    [
        ("var x = 1;", ScriptStyle.DEVICE_REPOSITORY, r"defines no function decodeUplink\(input\)$"),
        (
            CHIRPSTACK_V3_CODEC,
            ScriptStyle.DEVICE_REPOSITORY,
            r"defines no function decodeUplink\(input\); it defines Decode\(fPort, bytes, variables\)",
        ),
        (TTN_V2_CODEC, ScriptStyle.CHIRPSTACK_V3, r"defines no function Decode\(.*it defines Decoder"),
        (DEVICE_REPOSITORY_CODEC, ScriptStyle.TTN_V2, r"defines no function Decoder\(bytes, port\)"),
    ],
)
def test_a_script_without_the_function_its_style_calls_is_refused_when_loaded(
    script: str, style: ScriptStyle, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        _compile(script, style)


def test_throw_reports_message_and_line() -> None:
    thrower = _compile(
        "function decodeUplink(input) {\n  const x = 1;\n  throw new RangeError('bad frame ' + x);\n}\n"
    )
    try:
        with pytest.raises(DecodeError, match=r"RangeError: bad frame 1 \(line 3\)"):
            thrower.decode(1, b"\x00")
    finally:
        thrower.close()


def test_syntax_error_at_registration_names_line() -> None:
    with pytest.raises(DecodeError, match=r"SyntaxError.*\(line 2\)"):
        _compile("function decodeUplink(input) {\n  return {data: {}};;; }}\n")


def test_infinite_loop_hits_time_limit_and_codec_recovers() -> None:
    looping = _compile(
        "let calls = 0;\nfunction decodeUplink(input) {\n  calls++;\n"
        "  if (input.bytes[0] === 1) { while (true) {} }\n  return { data: { calls: calls } };\n}\n"
    )
    try:
        with pytest.raises(DecodeError, match="time limit of 300 ms"):
            looping.decode(1, b"\x01")
        # a fresh isolate: the script's global state starts over
        assert looping.decode(1, b"\x00").data == {"calls": 1}
    finally:
        looping.close()


def _values_held_by(error: BaseException) -> list[object]:
    """Engine value handles still reachable from the locals of `error`'s traceback frames
    (and those of the exceptions it was raised from or during)."""
    found: list[object] = []
    chain: list[BaseException | None] = [error]
    while chain:
        current = chain.pop()
        if current is None:
            continue
        tb = current.__traceback__
        while tb is not None:
            found += [
                value for value in tb.tb_frame.f_locals.values() if type(value).__name__ == "ValueHandle"
            ]
            tb = tb.tb_next
        chain += [current.__cause__, current.__context__]
    return found


def _engine(script: str) -> IsolateEngine:
    """The sandbox process's own engine, run here so that its V8 values can be counted."""
    return IsolateEngine(
        script,
        ScriptStyle.DEVICE_REPOSITORY.value,
        call_time_limit_s=FAST_LIMITS.call_time_limit_s,
        load_time_limit_s=FAST_LIMITS.load_time_limit_s,
        heap_limit_bytes=FAST_LIMITS.heap_limit_bytes,
    )


def test_a_timed_out_call_lets_go_of_engine_values_before_its_isolate_is_discarded() -> None:
    """The failed call's frames held the engine's value handles; freed later on the caller's
    path, they reached V8 while the discarded isolate was being torn down, and the process
    died of a segmentation fault (seen once in CI)."""
    looping = _engine("function decodeUplink(input) { while (true) {} }\n")
    try:
        with pytest.raises(ScriptFailure, match="time limit") as raised:
            looping.decode(1, b"\x01", None)
        assert _values_held_by(raised.value) == []
    finally:
        looping.close()


def _live_engine_values() -> int:
    return sum(1 for found in gc.get_objects() if type(found).__name__ == "ValueHandle")


def test_the_answer_to_a_cancelled_call_is_let_go_of_by_its_isolates_teardown() -> None:
    """V8 answers a call cancelled for its time limit after the fact. That answer belongs
    to the discarded isolate and is settled on the isolate's own loop once it is freed,
    not on the next isolate's loop by the next call (which would free the value while the
    old isolate was being torn down)."""
    looping = _engine("function decodeUplink(input) { while (true) {} }\n")
    try:
        with pytest.raises(ScriptFailure, match="time limit"):
            looping.decode(1, b"\x01", None)
        for thread in threading.enumerate():
            if thread.name == "lorakom-js-discard":  # the old isolate's teardown
                thread.join(timeout=10)
        assert _live_engine_values() == 0
    finally:
        looping.close()


def test_huge_allocation_hits_memory_limit_and_process_survives() -> None:
    hungry = JavaScriptCodec(
        "function decodeUplink(input) {\n  if (input.bytes[0] === 1) {\n    const hoard = [];\n"
        "    for (;;) { hoard.push(new Array(4096).fill(hoard.length)); }\n  }\n"
        "  return { data: { ok: true } };\n}\n",
        ScriptStyle.DEVICE_REPOSITORY,
        SandboxLimits(call_time_limit_s=10.0, heap_limit_bytes=32 * 2**20),
    )
    try:
        with pytest.raises(DecodeError, match="memory limit of 32 MiB"):
            hungry.decode(1, b"\x01")
        assert hungry.decode(1, b"\x00").data == {"ok": True}
    finally:
        hungry.close()


@pytest.mark.parametrize(
    "script",
    [
        "const b = new ArrayBuffer(3e9); function decodeUplink(i) { return { data: {} }; }",
        "function decodeUplink(i) { let s = 'x'; for (;;) { s = s + s; } }",
    ],
)
def test_allocation_beyond_engine_limits_is_a_script_error(script: str) -> None:
    def load_and_call() -> None:
        broken = _compile(script)
        try:
            broken.decode(1, b"\x00")
        finally:
            broken.close()

    with pytest.raises(DecodeError, match="RangeError"):
        load_and_call()


def test_no_host_access() -> None:
    probe = _compile(
        "function decodeUplink(input) {\n  return { data: {\n"
        "    require: typeof require, fetch: typeof fetch, process: typeof process,\n"
        "    xhr: typeof XMLHttpRequest, importScripts: typeof importScripts, Deno: typeof Deno,\n"
        "  } };\n}\n"
    )
    try:
        assert set(probe.decode(1, b"").data.values()) == {"undefined"}
    finally:
        probe.close()
    importer = _compile("function decodeUplink(input) { return import('fs').then(() => ({data: {}})); }")
    try:
        with pytest.raises(DecodeError):
            importer.decode(1, b"")
    finally:
        importer.close()


def test_es2020_syntax() -> None:
    modern = _compile(
        "const decodeUplink = ({ bytes, fPort }) => {\n"
        "  const big = 2n ** 40n;\n  const cfg = { nested: null };\n"
        "  const depth = cfg.nested?.depth ?? 'none';\n"
        "  return { data: { depth: depth, big: Number(big % 1000n), port: fPort } };\n};\n"
    )
    try:
        assert modern.decode(3, b"").data == {"depth": "none", "big": 776, "port": 3}
    finally:
        modern.close()


def test_scripts_of_256_kib_and_more_load_and_run() -> None:
    table = ",".join(str(i % 251) for i in range(90_000))
    script = (
        f"const TABLE = [{table}];\n"
        + "function decodeUplink(input) { return { data: { v: TABLE[89999] } }; }\n"
    )
    assert len(script.encode()) > 256 * 1024
    large = _compile(script)
    try:
        assert large.decode(1, b"").data == {"v": 89999 % 251}
    finally:
        large.close()


def test_codecs_are_isolated_from_each_other() -> None:
    polluter = _compile("globalThis.shared = 'mine';\nfunction decodeUplink(i) { return { data: {} }; }")
    reader = _compile("function decodeUplink(i) { return { data: { seen: typeof shared } }; }")
    try:
        assert reader.decode(1, b"").data == {"seen": "undefined"}
    finally:
        polluter.close()
        reader.close()


def test_script_cannot_forge_the_glue() -> None:
    forger = _compile(
        "function decodeUplink(input) {\n  globalThis.__lorakom = null;\n"
        '  JSON.stringify = () => \'{"data": {"forged": true}}\';\n  return { data: { honest: true } };\n}\n'
    )
    try:
        assert forger.decode(1, b"").data == {"honest": True}
        assert forger.decode(1, b"").data == {"honest": True}
    finally:
        forger.close()


def test_batch_decoding_matches_single_calls(codec: JavaScriptCodec) -> None:
    frames = [(85, bytes([i, 0x00, i])) for i in range(50)] + [(85, b"\x01")]
    results = codec.decode_many(frames)
    for (port, payload), result in zip(frames[:-1], results[:-1], strict=True):
        assert result == codec.decode(port, payload)
    assert isinstance(results[-1], DecodeError)


def test_usable_from_inside_an_event_loop(codec: JavaScriptCodec) -> None:
    async def decode_in_loop() -> ScriptResult:
        return codec.decode(85, bytes([1, 0, 5]))

    assert asyncio.run(decode_in_loop()).data["temperature"] == 0.5


def test_registry_prefers_builtin_then_javascript() -> None:
    registry = CodecRegistry(sandbox_limits=FAST_LIMITS)
    try:
        registry.register_javascript(
            "acme/thermo", DEVICE_REPOSITORY_CODEC, devices=["thermo-1"], use_case="environment"
        )
        outcome = registry.decode(
            codec_id="acme/thermo", f_port=85, payload=bytes([55, 0, 215]), network_decoded=None
        )
        assert outcome.source is DecoderSource.JAVASCRIPT
        assert {(r.quantity, r.value) for r in outcome.readings} == {("battery", 55.0), ("temperature", 21.5)}
        # a JS codec under a built-in's id is used only when preferred
        registry.register_javascript(
            "elsys/ers-codec", "function decodeUplink(i) { return {data: {js: true}}; }"
        )
        builtin = registry.decode(
            codec_id="elsys/ers-codec", f_port=1, payload=bytes.fromhex("0100e2"), network_decoded=None
        )
        assert builtin.source is DecoderSource.BUILTIN
        script = registry.decode(
            codec_id="elsys/ers-codec",
            f_port=1,
            payload=bytes.fromhex("0100e2"),
            network_decoded=None,
            preference=(DecoderSource.JAVASCRIPT,),
        )
        assert script.decoded == {"js": True}
        sources = {(info.codec_id, info.source) for info in registry.codecs()}
        assert ("elsys/ers-codec", DecoderSource.JAVASCRIPT) in sources
        assert ("acme/thermo", DecoderSource.JAVASCRIPT) in sources
        failing = registry.decode(codec_id="acme/thermo", f_port=85, payload=b"\x01", network_decoded=None)
        assert failing.error is not None
        assert "need 3 bytes" in failing.error
    finally:
        registry.close()


STATELESS_LOOPING_CODEC = """
function decodeUplink(input) {
  if (input.bytes[0] === 0xff) { while (true) {} }
  return { data: { first: input.bytes[0], port: input.fPort } };
}
"""


def test_a_runaway_frame_costs_its_batch_one_time_limit_and_fails_alone() -> None:
    looping = _compile(STATELESS_LOOPING_CODEC)
    try:
        frames = [(7, bytes([i % 200])) for i in range(256)]
        frames[100] = (7, b"\xff")
        # The exchange has room for the batch's limit, the frame's own and the others alone, not
        # for 256 limits: were each frame to cost one, every frame would come back an error.
        results = looping.decode_many(frames)
        assert isinstance(results[100], DecodeError)
        assert "time limit of 300 ms" in str(results[100])
        for index, ((port, payload), result) in enumerate(zip(frames, results, strict=True)):
            if index != 100:
                assert result == ScriptResult({"first": payload[0], "port": port})
    finally:
        looping.close()


def test_an_empty_batch_needs_no_call() -> None:
    empty = _compile(STATELESS_LOOPING_CODEC)
    try:
        assert empty.decode_many([]) == []
    finally:
        empty.close()


@pytest.fixture
def scripted_registry() -> Iterator[CodecRegistry]:
    registry = CodecRegistry(sandbox_limits=FAST_LIMITS)
    registry.register_javascript("acme/thermo", DEVICE_REPOSITORY_CODEC)
    registry.register_javascript("acme/looping", STATELESS_LOOPING_CODEC)
    registry.register_javascript(
        "acme/throwing", "function decodeUplink(i) {\n  throw new TypeError('no');\n}"
    )
    registry.register_javascript("elsys/ers-codec", "function decodeUplink(i) { return {data: {js: true}}; }")
    yield registry
    registry.close()


def _requests_of_every_kind() -> list[DecodeRequest]:
    network = {"temperature": 19.5}
    js_only = (DecoderSource.JAVASCRIPT,)
    requests = [
        # more than one batch of one codec, with warnings and codec-reported errors among them
        *(
            DecodeRequest("acme/thermo", 85, bytes([i % 100, 0xFE if i % 7 == 0 else 0x01, i % 256]), None)
            for i in range(600)
        ),
        DecodeRequest("acme/thermo", 85, b"\x01", None),
        DecodeRequest("acme/thermo", 85, b"\x01", network),  # falls through to the network's object
        DecodeRequest("acme/thermo", None, b"\x01\x02\x03", network),  # no fPort: JS fails before any call
        DecodeRequest("acme/thermo", None, b"\x01\x02\x03", None),
        DecodeRequest("acme/throwing", 1, b"\x00", None),
        DecodeRequest("acme/throwing", 1, b"\x00", network),
        DecodeRequest("acme/looping", 1, b"\xff", network),  # runaway script, the network covers
        DecodeRequest("acme/looping", 1, b"\x05", None),
        # a built-in that fails, then the JS codec under its id
        DecodeRequest("elsys/ers-codec", 1, bytes.fromhex("ff"), None),
        DecodeRequest("elsys/ers-codec", 1, bytes.fromhex("0100e2"), None),
        DecodeRequest("elsys/ers-codec", 1, bytes.fromhex("0100e2"), None, preference=js_only),
        DecodeRequest("milesight-iot/em500-udl-codec", 85, bytes.fromhex("01755c03821e00"), None),
        DecodeRequest("acme/thermo", 85, bytes([1, 2, 3]), network, preference=(DecoderSource.NETWORK,)),
        DecodeRequest("acme/thermo", 85, bytes([1, 2, 3]), network, preference=(DecoderSource.BUILTIN,)),
        DecodeRequest("unknown/codec", 1, b"\x00", None),
        DecodeRequest(None, 1, b"\x00", None),
        DecodeRequest(None, 1, b"\x00", network),
        DecodeRequest(None, 1, b"\x00", [1, 2]),  # type: ignore[arg-type]  # what a broken server might send
    ]
    # interleave codecs, as a batch of many devices' uplinks is
    return requests[600:] + requests[:600:2] + requests[1:600:2]


def test_registry_batches_give_the_outcomes_of_single_calls(scripted_registry: CodecRegistry) -> None:
    requests = _requests_of_every_kind()
    batched = scripted_registry.decode_many(requests)
    single = [
        scripted_registry.decode(
            codec_id=request.codec_id,
            f_port=request.f_port,
            payload=request.payload,
            network_decoded=request.network_decoded,
            device_metadata=request.device_metadata,
            preference=request.preference,
        )
        for request in requests
    ]
    assert batched == single
    by_error = {outcome.error for outcome in batched}
    assert any(error and "codec reported: need 3 bytes" in error for error in by_error)
    assert any(outcome.warnings == ("below sensor range",) for outcome in batched)
    covered = [outcome for outcome in batched if outcome.source is DecoderSource.NETWORK and outcome.warnings]
    assert any("time limit of 300 ms" in outcome.warnings[0] for outcome in covered)
    assert any("TypeError: no (line 2)" in outcome.warnings[0] for outcome in covered)
    assert scripted_registry.decode_many([]) == []


def test_a_runaway_frame_in_a_registry_batch_fails_alone_in_bounded_time(
    scripted_registry: CodecRegistry,
) -> None:
    requests = [DecodeRequest("acme/looping", 1, bytes([i % 200]), None) for i in range(1000)]
    requests[600] = DecodeRequest("acme/looping", 1, b"\xff", None)
    outcomes = scripted_registry.decode_many(requests)
    assert outcomes[600].error == "javascript: script exceeded its time limit of 300 ms"
    assert all(outcome.ok for index, outcome in enumerate(outcomes) if index != 600)
    assert outcomes[601].decoded == {"first": 601 % 200, "port": 1}


def _sandbox_processes() -> set[int]:
    """Live child processes of this test process (the codecs' sandbox processes)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def test_an_idle_script_process_is_ended_and_started_again_when_needed() -> None:
    before = _sandbox_processes()
    sleepy = JavaScriptCodec(
        DEVICE_REPOSITORY_CODEC, ScriptStyle.DEVICE_REPOSITORY, SandboxLimits(idle_stop_s=0.3)
    )
    try:
        assert sleepy.decode(85, bytes([92, 0x01, 0x34])).data["battery"] == 92
        assert len(_sandbox_processes() - before) == 1
        waited = 0.0
        while _sandbox_processes() - before and waited < 10:
            time.sleep(0.1)
            waited += 0.1
        assert _sandbox_processes() - before == set(), "the idle process should have been ended"
        assert sleepy.decode(85, bytes([93, 0x01, 0x34])).data["battery"] == 93
    finally:
        sleepy.close()


def test_a_sandbox_process_that_stops_answering_is_ended_after_the_calls_allowance() -> None:
    """The worker enforces the time limits itself; should it hang (here: stopped by a signal),
    the caller still gets its timeout within the limit and a grace, and the next call a new
    process."""
    before = _sandbox_processes()
    frozen = _compile(DEVICE_REPOSITORY_CODEC)
    try:
        (worker,) = _sandbox_processes() - before
        os.kill(worker, signal.SIGSTOP)
        with pytest.raises(DecodeError, match="time limit of 300 ms"):
            frozen.decode(85, bytes([1, 0, 5]))
        assert worker not in _sandbox_processes()
        assert frozen.decode(85, bytes([1, 0, 5])).data["temperature"] == 0.5
    finally:
        frozen.close()
