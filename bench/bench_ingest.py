"""Ingest throughput: MQTT (QoS 1) → bridge → PostgreSQL, next to its two ceilings, on the same data.

    python bench/bench_ingest.py [--messages 200000] [--skip-two]

What is measured, each on the same 200,000 realistic uplinks (TTS v3 and ChirpStack v4
JSON of the demo fleet, real vendor payloads, 1-3 gateways each):

  (a) a bare paho subscriber at QoS 1 that only receives: the MQTT ceiling;
  (a') the bridge's own client (`BufferedClient`, PUBLISH packets cut from its read
      buffer, acks in one write per read) that only receives: what receiving costs the
      bridge, to read the time table at the end with;
  (b) binary COPY of the uplink rows into an indexed copy of the `uplink` table, and the
      bridge's own write path (`write_batch`: COPY + merge) without MQTT: the database ceilings;
  (c) one `lorakom bridge` process, manual acks after each committed batch;
  (d) two `lorakom bridge` processes on one shared subscription.

Method: the consumers' sessions are created first, then every message is published and
queued by the broker, then the consumer starts and drains the queue. So the publisher's own
speed never limits the number, and each run sees exactly the same stream. The rate is
counted from the first stored (or received) message to the last. The benchmark runs its
own Mosquitto with `max_queued_messages 0`: the default limit of 1,000 queued messages
per client would drop QoS 1 messages under this flood.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.postgres import benchmark_server, fresh_migrated_database
from cli.backing_services import free_port, port_answers
from cli.demo import register_fleet
from cli.simulator.fleet import demo_fleet
from cli.simulator.publisher import generate
from decoders import CodecRegistry
from domain.errors import MessageRejected
from domain.uplink import NetworkServer, Uplink
from ingest.adapters import parse_message
from ingest.config import SourceConfig
from ingest.metrics import IngestCounters
from ingest.mqtt_client import BufferedClient, Publish
from ingest.pipeline import DeviceCache, Pipeline
from storage.database import create_database_engine
from storage.uplinks import IngestBatch, prepare_connection, write_batch

Message = tuple[str, bytes]
PROJECT = Path(__file__).resolve().parents[1]


def kind_of(topic: str) -> NetworkServer:
    return NetworkServer.TTS if topic.startswith("v3/") else NetworkServer.CHIRPSTACK_V4


# -- services ---------------------------------------------------------------------


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not port_answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError("mosquitto did not start")
        time.sleep(0.05)
    return process, port


def fresh_database(server_url: str, name: str) -> str:
    """A migrated database with the demo fleet registered, so uplinks decode into readings."""
    url = fresh_migrated_database(server_url, name)
    engine = create_database_engine(url)
    register_fleet(engine, demo_fleet())
    engine.dispose()
    # The benchmark's sources all belong to paderborn (as one regional network server would),
    # and a source writes only for its own town's devices: the other towns grant it ingest.
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO ingest_grant (owner_municipality_id, source_municipality_id, created_by) "
            "SELECT owner.id, source.id, 'bench' FROM municipality owner, municipality source "
            "WHERE source.slug = 'paderborn' AND owner.id <> source.id"
        )
    return url


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- publishing ---------------------------------------------------------------------


def publish_all(port: int, messages: list[Message]) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acknowledged = [0]

    def on_publish(*_: Any) -> None:
        acknowledged[0] += 1
        if acknowledged[0] == len(messages):
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for sent, (topic, body) in enumerate(messages, start=1):
        # paho numbers messages with 16-bit ids and keys its queue by them: more than
        # 65,535 unacknowledged messages would overwrite each other.
        while sent - acknowledged[0] > 30_000:
            time.sleep(0.005)
        client.publish(topic, body, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return len(messages) / elapsed


def forget_sessions(port: int, client_ids: list[str]) -> None:
    """End finished consumers' sessions, so later floods are not queued for them too."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
        client.connect("127.0.0.1", port, clean_start=True, properties=properties)
        client.loop_start()
        client.disconnect()
        client.loop_stop()


# -- (a) bare paho ------------------------------------------------------------------


def bare_subscriber(port: int, client_id: str, expected: int, subscribe_only: bool, buffered: bool) -> None:
    """Runs in its own process: receive at QoS 1 and acknowledge, nothing else.

    paho acknowledges by itself; the buffered client as the bridge does, in one write
    per read (here at once, where the bridge waits for its commit).
    """
    client = (BufferedClient if buffered else mqtt.Client)(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    received = [0]
    first = [0.0]
    done = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        if received[0] == 0:
            first[0] = time.perf_counter()
        received[0] += 1
        if buffered:
            client.ack(message.mid, message.qos)
        if received[0] >= expected:
            done.set()

    def on_publishes(publishes: list[Publish]) -> None:
        if received[0] == 0:
            first[0] = time.perf_counter()
        received[0] += len(publishes)
        assert isinstance(client, BufferedClient)
        client.ack_many([publish.mid for publish in publishes if publish.qos == 1])
        if received[0] >= expected:
            done.set()

    if isinstance(client, BufferedClient):
        client.manual_ack_set(True)
        client.on_publishes = on_publishes
    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 20000
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.subscribe([("v3/#", 1), ("application/#", 1)])
    client.loop_start()
    subscribed.wait(10)
    if subscribe_only:
        client.disconnect()
        client.loop_stop()
        return
    done.wait(600)
    elapsed = time.perf_counter() - first[0]
    client.disconnect()
    client.loop_stop()
    print(f"{received[0]} {elapsed:.3f} {peak_rss_mb(os.getpid()):.1f}")


def measure_bare_paho(port: int, messages: list[Message], buffered: bool = False) -> tuple[float, float]:
    run = [sys.executable, __file__, "--bare-subscriber", str(port), str(len(messages))]
    if buffered:
        run.append("--buffered")
    subprocess.run([*run, "--subscribe-only"], check=True)
    publish_all(port, messages)
    output = subprocess.run(run, check=True, capture_output=True, text=True).stdout.split()
    received, elapsed, rss = int(output[0]), float(output[1]), float(output[2])
    forget_sessions(port, ["bench-buffered" if buffered else "bench-bare"])
    return received / elapsed, rss


# -- (b) COPY ceilings ---------------------------------------------------------------


def pipeline_records(
    database_url: str, messages: list[Message]
) -> tuple[list[IngestBatch], dict[str, float]]:
    """Parse and decode everything up front, timing each stage per message."""
    counters = IngestCounters()
    devices = DeviceCache()
    with psycopg.connect(database_url) as conn:
        devices.refresh(conn)
        paderborn = conn.execute("SELECT id FROM municipality WHERE slug = 'paderborn'").fetchone()
        assert paderborn is not None
        municipality_ids = {"bench": int(paderborn[0])}  # the town the other towns granted ingest
    pipeline = Pipeline(devices, CodecRegistry(), municipality_ids, counters)
    source = SourceConfig(name="bench", kind=NetworkServer.TTS, municipality="bench", host="127.0.0.1")
    started = time.perf_counter()
    events: list[Uplink] = []
    for topic, body in messages:
        try:
            event = parse_message(kind_of(topic), topic, body)
        except MessageRejected:
            continue
        if isinstance(event, Uplink):
            events.append(event)
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    batches: list[IngestBatch] = []
    for first in range(0, len(events), 2000):
        builder = pipeline.new_batch()
        for event in events[first : first + 2000]:
            builder.add_event(source, event)
        batches.append(builder.finish())
    decode_s = time.perf_counter() - started
    n = len(messages)
    return batches, {"parse_us": parse_s / n * 1e6, "decode_us": decode_s / n * 1e6}


def measure_copy(database_url: str, batches: list[IngestBatch]) -> tuple[float, float]:
    from storage.uplinks import UPLINK_COPY_TYPES, uplink_copy_row  # the same rows the bridge writes

    rows = [uplink_copy_row(record) for batch in batches for record in batch.uplinks]
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE copy_ceiling (LIKE uplink INCLUDING ALL)")
        conn.execute("ALTER TABLE copy_ceiling ALTER network_decoded TYPE text, ALTER decoded TYPE text")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY copy_ceiling FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(UPLINK_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        conn.commit()
        raw = len(rows) / (time.perf_counter() - started)
        prepare_connection(conn)
        started = time.perf_counter()
        for batch in batches:
            write_batch(conn, batch)
        merged = len(rows) / (time.perf_counter() - started)
    return raw, merged


# -- (c), (d) the bridge -------------------------------------------------------------


def sources_file(workdir: Path, port: int) -> Path:
    path = workdir / "sources.toml"
    path.write_text(
        f"""
[[source]]
name = "bench-tts"
kind = "tts"
municipality = "paderborn"
host = "127.0.0.1"
port = {port}
tls = false
qos = 1
mqtt_version = "5"
topic = "v3/+/devices/+/up"

[[source]]
name = "bench-chirpstack"
kind = "chirpstack-v4"
municipality = "paderborn"
host = "127.0.0.1"
port = {port}
topic = "application/+/device/+/event/up"
"""
    )
    return path


def bridge_process(
    config: Path, database_url: str, instance: str, group: str | None
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "cli.main", "bridge", "--config", str(config), "--instance", instance]
    if group:
        command += ["--shared-group", group]
    env = {**os.environ, "LORAKOM_DB_URL": database_url, "LORAKOM_INGEST_STATS_INTERVAL_S": "3600"}
    return subprocess.Popen(command, env=env, cwd=PROJECT, stderr=subprocess.PIPE, text=True)


def wait_for_log(process: subprocess.Popen[str], needle: str, times: int) -> None:
    assert process.stderr is not None
    seen = 0
    for line in process.stderr:
        if needle in line:
            seen += 1
            if seen >= times:
                break
    threading.Thread(target=lambda: [None for _ in process.stderr or []], daemon=True).start()


def stored(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM uplink").fetchone()
    return int(row[0]) if row else 0


def measure_bridges(
    database_url: str,
    port: int,
    workdir: Path,
    messages: list[Message],
    processes: int,
    profile: bool = False,
) -> tuple[float, list[float]]:
    """Drain a pre-filled queue; `profile` samples the first process (and so slows it: a separate pass)."""
    config = sources_file(workdir, port)
    group = "bench" if processes > 1 else None
    # Each measurement has sessions of its own: a persistent session keeps its
    # subscriptions, and one left from a plain subscription would receive every message.
    names = [f"{'profile' if profile else 'shared' if group else 'single'}-{n}" for n in range(processes)]
    # Create the sessions (and subscriptions), then stop: the broker queues for them.
    for name in names:
        process = bridge_process(config, database_url, name, group)
        wait_for_log(process, "connected (session present", 2)
        process.send_signal(signal.SIGINT)
        process.wait(30)
    publish_all(port, messages)
    running = [bridge_process(config, database_url, name, group) for name in names]
    profiler = start_profiler(running[0].pid, workdir) if profile else None
    first_at = None
    while True:
        count = stored(database_url)
        now = time.perf_counter()
        if first_at is None and count > 0:
            first_at, first_count = now, count
            cpu_at_first = [cpu_seconds(p.pid) for p in running]
        if count >= len(messages):
            break
        if any(p.poll() is not None for p in running):
            raise RuntimeError("a bridge process died")
        time.sleep(0.05)
    assert first_at is not None
    rate = (count - first_count) / (now - first_at)
    rss = [peak_rss_mb(p.pid) for p in running]
    busy = [
        (cpu_seconds(p.pid) - before) / (now - first_at)
        for p, before in zip(running, cpu_at_first, strict=True)
    ]
    if not profile:
        print(f"    bridge CPU use while draining: {', '.join(f'{b:.0%}' for b in busy)} of one core")
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
    for process in running:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    sessions = [f"lorakom-bench-{kind}-{name}" for kind in ("tts", "chirpstack") for name in names]
    forget_sessions(port, sessions)
    return rate, rss


def start_profiler(pid: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    """Sample every thread of the bridge with py-spy (when installed): where the time goes."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return None
    output = workdir / "bridge.collapsed"
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(output), "--rate", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def print_profile(workdir: Path, top: int = 18) -> None:
    """Own time per function, summed over all threads, from py-spy's collapsed stacks."""
    path = workdir / "bridge.collapsed"
    if not path.exists():
        print("\n(no profile: install py-spy to see where the time goes)")
        return
    own: dict[str, int] = {}
    by_thread: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        leaf = frames[-1]
        name = leaf.split(" (")[0]
        where = leaf.split(" (")[-1].rstrip(")").split("/")[-1] if " (" in leaf else ""
        key = f"{name} ({where.split(':')[0]})"
        own[key] = own.get(key, 0) + count
        thread = frames[0]
        by_thread[thread] = by_thread.get(thread, 0) + count
        total += count
    if not total:
        return
    print("\nprofile of one bridge process, separate pass (py-spy, all threads, share of samples):")
    for thread, count in sorted(by_thread.items(), key=lambda item: -item[1])[:6]:
        print(f"  thread {thread[:60]:60} {count / total:6.1%}")
    print("  top functions by own time:")
    for key, count in sorted(own.items(), key=lambda item: -item[1])[:top]:
        print(f"    {count / total:6.1%}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--skip-two", action="store_true")
    parser.add_argument("--only-bridge", action="store_true", help="skip the ceilings (for quick iterations)")
    parser.add_argument("--bare-subscriber", nargs=2, metavar=("PORT", "EXPECTED"))
    parser.add_argument("--subscribe-only", action="store_true")
    parser.add_argument("--buffered", action="store_true")
    args = parser.parse_args()
    if args.bare_subscriber:
        port, expected = (int(v) for v in args.bare_subscriber)
        client_id = "bench-buffered" if args.buffered else "bench-bare"
        bare_subscriber(port, client_id, expected, args.subscribe_only, args.buffered)
        return

    workdir = Path(tempfile.mkdtemp(prefix="lorakom-bench-"))
    broker, port = start_broker(workdir)
    server_url, embedded = benchmark_server(workdir)
    try:
        started = time.perf_counter()
        messages = generate(args.messages)
        mean_bytes = sum(len(body) for _, body in messages) / len(messages)
        tts_share = sum(1 for topic, _ in messages if topic.startswith("v3/")) / len(messages)
        print(
            f"generated {len(messages):,} uplinks in {time.perf_counter() - started:.1f}s "
            f"(mean {mean_bytes:.0f} bytes, {tts_share:.0%} TTS, the rest ChirpStack v4)"
        )
        bare_rate, bare_rss = (18_000.0, 0.0) if args.only_bridge else measure_bare_paho(port, messages)
        print(
            f"(a) bare paho subscriber, QoS 1:           {bare_rate:9,.0f} msg/s   peak RSS {bare_rss:.0f} MB"
        )
        buffered_rate = (
            float("nan") if args.only_bridge else measure_bare_paho(port, messages, buffered=True)[0]
        )
        print(f"(a') the bridge's client, receive only:    {buffered_rate:9,.0f} msg/s")

        url = fresh_database(server_url, "lorakom_bench_copy")
        batches, stage_costs = pipeline_records(url, messages[: 20_000 if args.only_bridge else None])
        raw, merged = measure_copy(url, batches)
        print(f"(b) binary COPY into indexed uplink table: {raw:9,.0f} rows/s")
        print(f"    write_batch (COPY + merge) no MQTT:    {merged:9,.0f} uplinks/s")

        url = fresh_database(server_url, "lorakom_bench_one")
        one_rate, one_rss = measure_bridges(url, port, workdir, messages, 1)
        print(
            f"(c) one bridge process:                   {one_rate:9,.0f} uplinks/s   "
            f"{one_rate / bare_rate:.0%} of (a) (target >= 60%)   peak RSS {one_rss[0]:.0f} MB"
        )
        # py-spy stops the process for every sample, which costs a third of its rate:
        # the profile comes from a separate, shorter pass over the start of the same stream.
        url = fresh_database(server_url, "lorakom_bench_profile")
        measure_bridges(url, port, workdir, messages[: len(messages) // 4], 1, profile=True)
        if not args.skip_two:
            url = fresh_database(server_url, "lorakom_bench_two")
            two_rate, two_rss = measure_bridges(url, port, workdir, messages, 2)
            rss_text = " + ".join(f"{r:.0f}" for r in two_rss)
            print(
                f"(d) two processes, shared subscription:   {two_rate:9,.0f} uplinks/s   "
                f"{two_rate / 10_000:.0%} of 10,000 target   peak RSS {rss_text} MB"
            )
        write_us = 1e6 / merged
        print("\nwhere one uplink's time goes in the bridge process (µs, measured separately):")
        print(f"  receive + ack        {1e6 / buffered_rate:6.1f}   (bare paho: {1e6 / bare_rate:.1f})")
        print(f"  parse (adapters)     {stage_costs['parse_us']:6.1f}")
        print(f"  decode (decoders)    {stage_costs['decode_us']:6.1f}")
        print(f"  write (COPY+merge)   {write_us:6.1f}   (client and server together)")
        print(f"  end to end, one proc {1e6 / one_rate:6.1f}")
        print_profile(workdir)
    finally:
        broker.kill()
        broker.wait()
        if embedded is not None:
            embedded.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
