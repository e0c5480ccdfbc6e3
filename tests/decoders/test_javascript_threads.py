"""JS codecs loaded from worker threads (API requests, background redecodes) must not crash V8,
and a process holding codecs must end when its work is done."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import threading
    from decoders import CodecRegistry

    SCRIPT = "function decodeUplink(input) { return {data: {first: input.bytes[0]}}; }"
    registries = [CodecRegistry() for _ in range(3)]
    for registry in registries:  # each isolate is made on a different, short-lived thread
        worker = threading.Thread(target=registry.register_javascript, args=("test/first", SCRIPT))
        worker.start()
        worker.join()
    outcome = registries[-1].decode(
        codec_id="test/first", f_port=1, payload=bytes([42]), network_decoded=None
    )
    print(outcome.decoded)
    """
)


def test_isolates_made_on_worker_threads_do_not_crash_the_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "{'first': 42}"


def test_a_process_with_unclosed_codecs_exits() -> None:
    """Isolates left open at interpreter exit once hung most processes started side by side
    (V8's teardown waited for a thread Python had stopped); they are closed before that now."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROGRAM],
            cwd=Path(__file__).parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, f"exit {process.returncode}: {err[-2000:]}"
            assert out.strip() == "{'first': 42}"
    finally:
        for process in processes:
            process.kill()
            process.communicate()
