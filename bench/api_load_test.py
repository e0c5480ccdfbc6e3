"""The benchmark's requests: scenarios, clients sending them back to back, the table of latencies."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import numpy as np

from bench.api_fleet import DAY_S, SEED, SLOT_S, DevicePlan, Fleet, iso_time
from bench.api_frames import Links
from bench.api_loader import top_up_frames
from bench.api_server import create_key, memory_kib, sessions_opened, start_server
from bench.arrays import Floats

LATEST_TARGET_MS = 50.0
HEALTH_TARGET_MS = 50.0
HISTORY_TARGET_MS = 200.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    target_ms: float
    assumed: bool
    paths: list[str]
    describe: Callable[[Any], str]
    """Summarises one response body, to show that the scenario hits real data."""


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    concurrency: int
    latencies_s: Floats
    seconds: float
    errors: int
    first_error: str | None
    rss_kib: int

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 50) * 1000)

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 99) * 1000)

    @property
    def per_second(self) -> float:
        return self.latencies_s.size / self.seconds


def scenarios(fleet: Fleet, *, count: int = 5000) -> list[Scenario]:
    rng = random.Random(SEED + 1)
    slugs = [town.slug for town in fleet.towns]
    end_s = (fleet.end_s // 3600) * 3600
    month_start = max(fleet.first_slot * SLOT_S, end_s - 30 * DAY_S)
    week_start = max(fleet.first_slot * SLOT_S, end_s - 7 * DAY_S)
    by_town = "/v1/municipalities/{}"

    def history(device: DevicePlan) -> str:
        query = {
            "dev_eui": device.dev_eui,
            "quantity": device.quantity,
            "start": iso_time(month_start),
            "end": iso_time(end_s),
            "bucket": "1h",
            "limit": 10_000,
        }
        return by_town.format(fleet.towns[device.town].slug) + "/readings/history?" + urlencode(query)

    zones = [(town.slug, zone) for town in fleet.towns for zone in town.zones]
    occupancy_query = urlencode({"start": iso_time(week_start), "end": iso_time(end_s), "bucket": "1h"})
    return [
        Scenario(
            "latest values of a municipality",
            LATEST_TARGET_MS,
            False,
            [by_town.format(rng.choice(slugs)) + "/readings/latest?limit=1000" for _ in range(count)],
            lambda body: (
                f"{len(body['items'])} devices, {sum(len(item['values']) for item in body['items'])} values"
            ),
        ),
        Scenario(
            "a device's 30 days at 1 h buckets",
            HISTORY_TARGET_MS,
            False,
            [history(rng.choice(fleet.devices)) for _ in range(count)],
            lambda body: f"{len(body['items'])} buckets, {sum(1 for i in body['items'] if i['gap'])} gaps",
        ),
        Scenario(
            "a parking zone's 7 days at 1 h buckets",
            HISTORY_TARGET_MS,
            False,
            [
                by_town.format(slug) + f"/parking/zones/{quote(zone)}/occupancy?{occupancy_query}"
                for slug, zone in (rng.choice(zones) for _ in range(count))
            ],
            lambda body: (
                f"{len(body)} buckets, mean occupied {np.mean([b['occupied'] or 0 for b in body]):.1f} spots"
            ),
        ),
        Scenario(
            "waste collection list",
            HISTORY_TARGET_MS,
            True,
            [by_town.format(rng.choice(slugs)) + "/waste/collection?limit=1000" for _ in range(count)],
            lambda body: f"{len(body['items'])} bins due",
        ),
        Scenario(
            "gateway health",
            HEALTH_TARGET_MS,
            False,
            [by_town.format(rng.choice(slugs)) + "/health/gateways" for _ in range(count)],
            lambda body: (
                f"{len(body['items'])} gateways, {sum(1 for g in body['items'] if g.get('online'))} online"
            ),
        ),
    ]


async def drive(
    base: str, key: str, scenario: Scenario, *, concurrency: int, duration_s: float, warmup_s: float
) -> tuple[Floats, float, int, str | None, str]:
    """Requests back to back from `concurrency` clients for `duration_s`; latencies in seconds.

    The clients are aiohttp's: the load runs on the same cores as the server, and
    aiohttp's client costs about a quarter of a millisecond of CPU per request where
    httpx's cost over one, CPU the server would otherwise have had.
    """
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector, timeout=timeout) as client:
        async with client.get(scenario.paths[0]) as sample:
            if sample.status != 200:
                raise RuntimeError(f"{scenario.name}: {sample.status} {(await sample.text())[:500]}")
            summary = scenario.describe(await sample.json())
        position = 1
        warm_until = time.perf_counter() + warmup_s
        while time.perf_counter() < warm_until:
            async with client.get(scenario.paths[position]) as response:
                await response.read()
            position += 1
        latencies: list[float] = []
        errors = 0
        first_error: str | None = None
        deadline = time.perf_counter() + duration_s

        async def client_loop() -> None:
            nonlocal errors, first_error, position
            while time.perf_counter() < deadline:
                path = scenario.paths[position % len(scenario.paths)]
                position += 1
                sent = time.perf_counter()
                async with client.get(path) as response:
                    body = await response.read()
                latencies.append(time.perf_counter() - sent)
                if response.status != 200:
                    errors += 1
                    first_error = first_error or f"{response.status} {body[:300]!r}"

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return np.asarray(latencies), elapsed, errors, first_error, summary


def measure(url: str, fleet: Fleet, args: argparse.Namespace, log: Path) -> None:
    """Serve the API, run every scenario at every concurrency level, print the table."""
    key = create_key(url)
    links = Links.of(fleet)
    topped = top_up_frames(url, fleet, links)
    process, api = start_server(url, log)
    try:
        rss_start, _ = memory_kib(process.pid)
        levels = [int(level) for level in args.concurrency.split(",")]
        print(
            f"\nrequests: one uvicorn worker, {args.duration:.0f} s per row after {args.warmup:.0f} s "
            f"warm-up; {topped:,} frames added up to now; server RSS after start {rss_start / 1024:.0f} MiB"
        )
        print(
            f"  {'scenario':<40} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} "
            f"{'target':>9} {'p99/target':>10}      {'RSS MiB':>7} {'sessions':>8}  sample response"
        )
        passed = dict.fromkeys(levels, 0)
        for scenario in scenarios(fleet):
            top_up_frames(url, fleet, links)
            for level in levels:
                sessions_before = sessions_opened(url)
                latencies, seconds, errors, first_error, summary = asyncio.run(
                    drive(
                        api, key, scenario, concurrency=level, duration_s=args.duration, warmup_s=args.warmup
                    )
                )
                rss, _ = memory_kib(process.pid)
                opened = sessions_opened(url) - sessions_before - 1  # less the first count's own
                result = Result(scenario, level, latencies, seconds, errors, first_error, rss)
                ok = result.p99_ms < scenario.target_ms and not errors
                passed[level] += ok
                target = f"< {scenario.target_ms:.0f}" + ("*" if scenario.assumed else "")
                print(
                    f"  {scenario.name:<40} {level:>7} {result.p50_ms:>8.1f} {result.p99_ms:>8.1f} "
                    f"{result.per_second:>7.1f} {target:>9} {result.p99_ms / scenario.target_ms:>9.2f}x "
                    f"{'PASS' if ok else 'MISS'} {rss / 1024:>7.0f} {opened:>8}"
                    f"  {summary}; {latencies.size} requests, {errors} errors",
                    flush=True,
                )
                if first_error:
                    print(f"    first error: {first_error}")
                    print("    server log: " + " | ".join(log.read_text().splitlines()[-6:]))
        _, peak = memory_kib(process.pid)
        print("  * no target in the issue; the bucketed-history target is applied")
        print(f"server memory: {rss_start / 1024:.0f} MiB after start, peak {peak / 1024:.0f} MiB (VmHWM)")
        print(
            "database sessions: new PostgreSQL connections during the row (0 once the pool is warm: "
            "a connection opened per request costs a backend start and a cold plan cache)"
        )
        for level in levels:
            clients = "client" if level == 1 else "clients"
            print(f"at {level} concurrent {clients}: {passed[level]} of 5 scenarios within target")
    finally:
        process.terminate()
        process.wait(timeout=30)
