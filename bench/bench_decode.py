"""Payloads per second for each built-in decoder family and for a JS codec of similar work, single core.

Run: python bench/bench_decode.py [--seconds 1.0]

Stage 1 is bytes -> decoded object (what the targets are about); "full" adds
stage 2 (field map, derivations, plausibility) through `CodecRegistry.decode`,
the call the ingest pipeline makes. The JS codec is a channel/type decoder like
the Milesight one, written for this benchmark. Its rows count decodeUplink calls:
per call (each pays a thread switch into V8, far more than the codec's work),
and batched as the product runs it (the bridge and redecoding decode a batch of
uplinks in one `CodecRegistry.decode_many` call, which runs the codec on
SCRIPT_BATCH frames per switch).

JS codecs run in a child process per script, one isolate per municipality inside it (no
script state crosses towns). Two rows show that choice's cost: a batch whose uplinks come
from 29 towns (29 isolates, one call each), and what the rejected alternative, a fresh
isolate for every call, would cost per call.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decoders.javascript import JavaScriptCodec, ScriptStyle
from decoders.javascript_worker import IsolateEngine
from decoders.registry import BUILTIN_CODECS, SCRIPT_BATCH, CodecRegistry, DecodeRequest
from domain.decoding import DecoderSource

MILESIGHT_TARGET = 100_000
JS_TARGET = 10_000
BUILTIN_BY_ID = {codec.codec_id: codec for codec in BUILTIN_CODECS}

# Representative frames per family: (codec id, fPort, payload hex).
FAMILIES: dict[str, list[tuple[str, int, str]]] = {
    "milesight": [
        ("milesight-iot/em500-udl-codec", 85, "01755c03821e00"),
        ("milesight-iot/em310-udl-codec", 85, "01755c03824408040001"),
        ("milesight-iot/am307-codec", 85, "01755c03673401046865077de704087d070009733f27"),
        ("milesight-iot/em500-smtc-codec", 85, "01755c03673401046865057ff000"),
        ("milesight-iot/vs350-codec", 85, "84cc011108110185cce803e90301"),
    ],
    "decentlab": [
        ("decentlab/dl-pm-codec", 1, "021b50000f0c25002500270027002701f50107012c012d012d012d67bd618dbd10"),
        ("decentlab/dl-mbx-codec", 1, "02012f000304d200010bb1"),
        ("decentlab/dl-pr26-0-1-codec", 1, "02016700033e8060170c7f"),
    ],
    "elsys": [
        ("elsys/ers-co2-codec", 1, "0100e202290400270506060308"),
        ("elsys/ers-eye-codec", 1, "0100e2022904002705061101"),
    ],
    "dragino": [
        ("dragino/lse01-codec", 2, "ce2900f107a5099b6e2890"),
        ("dragino/ldds75-114-codec", 2, "0d3b0aef00000001"),
    ],
    "nwave": [
        ("nwave/nps405-codec", 1, "95"),
        ("nwave/nps405-codec", 2, "00d3d800590b"),
    ],
    "bosch": [
        ("bosch/tps110-0292-codec", 1, "01"),
        ("bosch/tps110-0292-codec", 3, "240300007503000000000000001d020301"),
    ],
    "cayenne": [("cayenne/lpp", 1, "0367011005685b06732794")],
}

# Same work as the Milesight AM307 decoder for the channels in the benchmark frame.
JS_CHANNEL_CODEC = """
function decodeUplink(input) {
  const b = input.bytes;
  const data = {};
  let i = 0;
  while (i + 1 < b.length) {
    const id = b[i], type = b[i + 1];
    i += 2;
    if (id === 0x01 && type === 0x75) { data.battery = b[i]; i += 1; }
    else if (id === 0x03 && type === 0x67) {
      data.temperature = (((b[i + 1] << 8) | b[i]) << 16 >> 16) / 10;
      i += 2;
    }
    else if (id === 0x04 && type === 0x68) { data.humidity = b[i] / 2; i += 1; }
    else if (id === 0x07 && type === 0x7d) { data.co2 = (b[i + 1] << 8) | b[i]; i += 2; }
    else if (id === 0x08 && type === 0x7d) { data.tvoc = (b[i + 1] << 8) | b[i]; i += 2; }
    else if (id === 0x09 && type === 0x73) { data.pressure = ((b[i + 1] << 8) | b[i]) / 10; i += 2; }
    else { break; }
  }
  return { data: data };
}
"""
JS_FRAME = bytes.fromhex("01755c03673401046865077de704087d070009733f27")
INGEST_BATCH = 2000  # the bridge's default batch size (LORAKOM_INGEST_BATCH_SIZE)
TOWNS = 29  # municipalities on the installation


def js_frame(n: int) -> bytes:
    """The benchmark frame with a battery level and temperature that vary from uplink to uplink."""
    frame = bytearray(JS_FRAME)
    frame[2] = n % 101
    frame[5] = n % 256
    return bytes(frame)


def rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second for `work` (which returns how many items it did), run for about `seconds`."""
    work()  # warm up caches and the JIT
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        done += work()
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per line")
    args = parser.parse_args()
    registry = CodecRegistry()
    rows: list[tuple[str, float, int | None]] = []

    for family, frames in FAMILIES.items():
        decoded_frames = [
            (registry_codec, port, bytes.fromhex(text)) for registry_codec, port, text in frames
        ]
        functions = [
            (BUILTIN_BY_ID[codec_id].decode, port, payload) for codec_id, port, payload in decoded_frames
        ]

        def stage_one(functions: list[tuple[Callable[[int, bytes], object], int, bytes]] = functions) -> int:
            for _ in range(200):
                for decode, port, payload in functions:
                    decode(port, payload)
            return 200 * len(functions)

        def full(frames: list[tuple[str, int, bytes]] = decoded_frames) -> int:
            for _ in range(50):
                for codec_id, port, payload in frames:
                    registry.decode(
                        codec_id=codec_id,
                        f_port=port,
                        payload=payload,
                        network_decoded=None,
                        device_metadata={"bin_depth_mm": 1200, "sensor_offset_mm": 150},
                    )
            return 50 * len(frames)

        target = MILESIGHT_TARGET if family == "milesight" else None
        rows.append((f"{family} stage 1", rate(stage_one, args.seconds), target))
        rows.append((f"{family} stage 1+2", rate(full, args.seconds), target))

    script = JavaScriptCodec(JS_CHANNEL_CODEC, ScriptStyle.DEVICE_REPOSITORY)
    try:
        assert script.decode(85, JS_FRAME).data["co2"] == 1255

        def js_single() -> int:
            for _ in range(100):
                script.decode(85, JS_FRAME)
            return 100

        rows.append(("javascript per call", rate(js_single, args.seconds), JS_TARGET))
        registry.register_javascript("bench/js-channel", JS_CHANNEL_CODEC)

        def js_full() -> int:
            for _ in range(100):
                registry.decode(
                    codec_id="bench/js-channel",
                    f_port=85,
                    payload=JS_FRAME,
                    network_decoded=None,
                    preference=(DecoderSource.JAVASCRIPT,),
                )
            return 100

        rows.append(("javascript per call, stage 1+2", rate(js_full, args.seconds), JS_TARGET))

        # What the bridge and redecoding do: a batch of uplinks (the bridge's default batch
        # size) through one registry call, in which the codec runs SCRIPT_BATCH frames per call.
        requests = [
            DecodeRequest("bench/js-channel", 85, js_frame(n), None, preference=(DecoderSource.JAVASCRIPT,))
            for n in range(INGEST_BATCH)
        ]
        script_frames = [(request.f_port or 0, request.payload) for request in requests]
        assert all(outcome.ok for outcome in registry.decode_many(requests))

        def js_batch_stage_one() -> int:
            for first in range(0, len(script_frames), SCRIPT_BATCH):
                script.decode_many(script_frames[first : first + SCRIPT_BATCH])
            return len(script_frames)

        def js_batch_full() -> int:
            registry.decode_many(requests)
            return len(requests)

        rows.append(
            (
                f"javascript batched ({SCRIPT_BATCH}/call), stage 1",
                rate(js_batch_stage_one, args.seconds),
                JS_TARGET,
            )
        )
        rows.append(
            (f"javascript batch of {INGEST_BATCH}, stage 1+2", rate(js_batch_full, args.seconds), JS_TARGET)
        )
        from_towns = [request._replace(municipality_id=n % TOWNS + 1) for n, request in enumerate(requests)]
        assert all(outcome.ok for outcome in registry.decode_many(from_towns))

        def js_batch_towns() -> int:
            registry.decode_many(from_towns)
            return len(from_towns)

        rows.append(
            (
                f"javascript batch of {INGEST_BATCH}, {TOWNS} towns",
                rate(js_batch_towns, args.seconds),
                JS_TARGET,
            )
        )

        def js_fresh_isolate() -> int:
            for _ in range(5):
                engine = IsolateEngine(
                    JS_CHANNEL_CODEC,
                    ScriptStyle.DEVICE_REPOSITORY.value,
                    call_time_limit_s=1.0,
                    load_time_limit_s=10.0,
                    heap_limit_bytes=128 * 2**20,
                )
                engine.decode(85, JS_FRAME, None)
                engine.close()
            return 5

        rows.append(
            ("javascript fresh isolate per call (not used)", rate(js_fresh_isolate, args.seconds), None)
        )
    finally:
        script.close()
        registry.close()

    print(f"{'decoder':<40} {'payloads/s':>12} {'target':>10} {'ratio':>7}")
    for name, measured, target in rows:
        target_text = f"{target:,}" if target else "-"
        ratio_text = f"{measured / target:.2f}" if target else "-"
        print(f"{name:<40} {measured:>12,.0f} {target_text:>10} {ratio_text:>7}")


if __name__ == "__main__":
    main()
