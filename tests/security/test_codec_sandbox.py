"""Vendor JS codecs are untrusted code: they must not grow the platform's memory, burn its
CPU after their time is up, stall other calls, or carry one town's payloads into another's.

Memory and CPU are measured on this test process and its children, where the scripts'
sandbox processes run: what the platform pays, wherever the sandbox puts the work.
All scripts here are written for these tests.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from decoders import CodecRegistry, DecodeRequest, DecoderSource, SandboxLimits
from decoders.javascript import JavaScriptCodec, ScriptStyle
from domain.errors import DecodeError
from tests.api.data import Tenant, auth

MIB = 2**20
SANDBOX_BUDGET = 256 * MIB  # the default SandboxLimits.memory_limit_bytes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _family() -> list[int]:
    """This process and its children (the codecs' sandbox processes)."""
    me = os.getpid()
    found = [me]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:
            found.append(int(entry.name))
    return found


def _rss_bytes() -> int:
    total = 0
    for pid in _family():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _cpu_seconds() -> float:
    """CPU time of this process and its live children, every thread counted."""
    total = 0
    for pid in _family():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


# -- memory --------------------------------------------------------------------------------

BIG_BUFFER = """
function decodeUplink(input) {
  if (input.bytes[0] === 1) {
    const buffer = new ArrayBuffer(384 * 1024 * 1024);
    new Uint8Array(buffer).fill(7);
    return { data: { bytes: buffer.byteLength } };
  }
  return { data: { ok: true } };
}
"""

# Every call keeps 32 MiB more in a global, as a leaky or hostile codec would.
HOARDER = """
var hoard = [];
function decodeUplink(input) {
  const block = new Uint8Array(32 * 1024 * 1024);
  block.fill(input.bytes[0]);
  hoard.push(block);
  return { data: { held_mib: hoard.length * 32 } };
}
"""


def test_one_call_allocating_384_mib_fails_cleanly_and_the_codec_serves_the_next() -> None:
    codec = JavaScriptCodec(BIG_BUFFER, ScriptStyle.DEVICE_REPOSITORY)
    try:
        assert codec.decode(1, b"\x00").data == {"ok": True}
        before = _rss_bytes()
        with pytest.raises(DecodeError, match=r"RangeError: Array buffer allocation failed|memory limit"):
            codec.decode(1, b"\x01")
        assert _rss_bytes() - before < 128 * MIB
        assert codec.decode(1, b"\x00").data == {"ok": True}
    finally:
        codec.close()


def test_calls_holding_32_mib_each_do_not_grow_the_platform_past_the_sandbox_budget() -> None:
    codec = JavaScriptCodec(HOARDER, ScriptStyle.DEVICE_REPOSITORY)
    try:
        codec.decode(1, b"\x00")
        before = _rss_bytes()
        peak = before
        answers: list[str] = []
        for call in range(30):
            try:
                answers.append(str(codec.decode(1, bytes([call + 1])).data["held_mib"]))
            except DecodeError as exc:
                answers.append(str(exc))
            peak = max(peak, _rss_bytes())
        # Before: 30 calls took the process to 1,167 MiB. Now the script's process holds at most
        # its budget (and V8's own share), and a call beyond it fails instead.
        assert peak - before < SANDBOX_BUDGET + 64 * MIB, answers
        failed = [index for index, answer in enumerate(answers) if not answer.isdigit()]
        assert failed, answers
        assert "RangeError: Array buffer allocation failed" in answers[failed[0]]
        # The isolate whose globals spent the memory is dropped: the next call starts afresh.
        assert answers[failed[0] + 1] == "32", answers
    finally:
        codec.close()


# -- time ----------------------------------------------------------------------------------

FAST = SandboxLimits(call_time_limit_s=0.3, load_time_limit_s=5.0)

ENDLESS = "function decodeUplink(input) { while (true) {} }"

# Sorting a typed array is one built-in call that V8 cannot interrupt: terminating the isolate
# waits until it is done, here some seconds. The array is filled by doubling copies, fast.
UNINTERRUPTIBLE = """
function decodeUplink(input) {
  const numbers = new Float64Array(12000000);
  for (let i = 0; i < 4096; i++) numbers[i] = Math.random();
  for (let filled = 4096; filled < numbers.length; filled *= 2) numbers.copyWithin(filled, 0, filled);
  numbers.sort();
  return { data: {} };
}
"""


@pytest.mark.parametrize("script", [ENDLESS, UNINTERRUPTIBLE], ids=["endless-loop", "long-built-in"])
def test_a_timed_out_call_really_stops_burning_cpu(script: str) -> None:
    codec = JavaScriptCodec(script, ScriptStyle.DEVICE_REPOSITORY, FAST)
    try:
        with pytest.raises(DecodeError, match="time limit of 300 ms"):
            codec.decode(1, b"\x00")
        time.sleep(0.2)  # the sandbox's own grace to stop what it was running
        spent_before = _cpu_seconds()
        time.sleep(1.5)
        burnt = _cpu_seconds() - spent_before
        assert burnt < 0.3, f"{burnt:.2f} CPU seconds in 1.5 s after the call had timed out"
    finally:
        codec.close()


def test_forty_concurrent_calls_on_an_endless_script_end_in_bounded_time_and_others_run() -> None:
    registry = CodecRegistry(sandbox_limits=FAST)
    try:
        registry.register_javascript("test/endless", ENDLESS)
        registry.register_javascript("test/quick", "function decodeUplink(i) { return { data: { ok: 1 } }; }")
        errors: list[str] = []

        def call() -> None:
            outcome = registry.decode(
                codec_id="test/endless", f_port=1, payload=b"\x00", network_decoded=None
            )
            errors.append(outcome.error or "")

        callers = [threading.Thread(target=call) for _ in range(40)]
        for caller in callers:
            caller.start()
        time.sleep(0.1)
        other = registry.decode(codec_id="test/quick", f_port=1, payload=b"", network_decoded=None)
        for caller in callers:
            caller.join(timeout=60)
        # Before: they queued on the script's lock, one time limit after the other (41 s at 1 s).
        # Now at most a few wait their turn and the rest are refused at once as busy.
        assert other.decoded == {"ok": 1}
        assert len(errors) == 40
        assert all("time limit" in error or "script busy" in error for error in errors), set(errors)
        assert sum("script busy" in error for error in errors) >= 30
    finally:
        registry.close()


# -- state across towns --------------------------------------------------------------------

# Remembers the last payload it saw in a global and tells it to the next call.
TELLTALE = """
var lastPayload = null;
function decodeUplink(input) {
  var previous = lastPayload;
  lastPayload = input.bytes.map(function (b) { return b.toString(16); }).join("");
  return { data: { previous: previous } };
}
"""


@pytest.fixture
def telltale_registry() -> Iterator[CodecRegistry]:
    registry = CodecRegistry()
    registry.register_javascript("test/telltale", TELLTALE)
    yield registry
    registry.close()


def test_a_global_set_for_one_town_is_not_seen_by_another(telltale_registry: CodecRegistry) -> None:
    town_a, town_b = 101, 202

    def previous(municipality_id: int, payload: bytes) -> object:
        outcome = telltale_registry.decode(
            codec_id="test/telltale",
            f_port=1,
            payload=payload,
            network_decoded=None,
            municipality_id=municipality_id,
        )
        assert outcome.decoded is not None, outcome.error
        return outcome.decoded["previous"]

    assert previous(town_a, b"\xaa\x01") is None
    assert previous(town_b, b"\xbb\x02") is None  # nothing of town A
    assert previous(town_a, b"\xaa\x03") == "aa1"  # a town's own state may stay, nothing relies on it
    assert previous(town_b, b"\xbb\x04") == "bb2"


def test_batches_of_several_towns_keep_each_towns_state_apart(telltale_registry: CodecRegistry) -> None:
    js = (DecoderSource.JAVASCRIPT,)
    requests = [
        DecodeRequest("test/telltale", 1, bytes([0xA0 + n]), None, preference=js, municipality_id=301)
        if n % 2 == 0
        else DecodeRequest("test/telltale", 1, bytes([0xB0 + n]), None, preference=js, municipality_id=302)
        for n in range(10)
    ]
    outcomes = telltale_registry.decode_many(requests)
    for request, outcome in zip(requests, outcomes, strict=True):
        assert outcome.decoded is not None, outcome.error
        seen = outcome.decoded["previous"]
        own_prefix = "a" if request.municipality_id == 301 else "b"
        assert seen is None or seen.startswith(own_prefix), (request, seen)


def test_trying_a_shared_script_shows_nothing_of_another_towns_payload(
    client: TestClient, tenant: Tenant, neighbour: Tenant, region_key: str
) -> None:
    codec_id = f"test-{uuid.uuid4().hex[:8]}/telltale-codec"
    registered = client.post(
        "/v1/codec-scripts",
        json={"codec_id": codec_id, "style": "decodeUplink", "script": TELLTALE},
        headers=tenant.headers("admin"),
    )
    assert registered.status_code == 201, registered.text
    try:
        url = f"/v1/codec-scripts/{codec_id}/test"
        mine = client.post(url, json={"f_port": 1, "payload_hex": "5ec2e7"}, headers=tenant.headers("editor"))
        assert mine.status_code == 200, mine.text
        theirs = client.post(
            url, json={"f_port": 1, "payload_hex": "00"}, headers=neighbour.headers("editor")
        )
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["decoded"] == {"previous": None}
    finally:
        client.delete(f"/v1/codec-scripts/{codec_id}", headers=auth(region_key))


# -- who may run scripts, and how often ----------------------------------------------------


def test_trying_a_script_needs_an_editor_and_is_rate_limited_per_key(
    client: TestClient, tenant: Tenant, neighbour: Tenant, region_key: str
) -> None:
    codec_id = f"test-{uuid.uuid4().hex[:8]}/try-codec"
    script = "function decodeUplink(input) { return { data: { first: input.bytes[0] } }; }"
    registered = client.post(
        "/v1/codec-scripts",
        json={"codec_id": codec_id, "style": "decodeUplink", "script": script},
        headers=tenant.headers("admin"),
    )
    assert registered.status_code == 201, registered.text
    url = f"/v1/codec-scripts/{codec_id}/test"
    payload = {"f_port": 1, "payload_hex": "2a"}
    try:
        for role in ("viewer", "technician"):
            refused = client.post(url, json=payload, headers=tenant.headers(role))
            assert refused.status_code == 403, (role, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
        answers = [client.post(url, json=payload, headers=tenant.headers("editor")) for _ in range(12)]
        assert [answer.status_code for answer in answers[:10]] == [200] * 10
        limited = answers[-1]
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["status"] == 429
        # The allowance is the key's own: another key of the same or another town still may.
        assert client.post(url, json=payload, headers=tenant.headers("admin")).status_code == 200
        assert client.post(url, json=payload, headers=neighbour.headers("editor")).status_code == 200
    finally:
        client.delete(f"/v1/codec-scripts/{codec_id}", headers=auth(region_key))
