"""A source with TLS (the default for The Things Stack) connects to a broker that only speaks TLS."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, port_answers
from tests.ingest.harness import publish_tls, start_bridge, wait_for_uplinks
from tests.ingest.messages import Traffic


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("this test needs the openssl command (Debian/Ubuntu: apt install openssl)")
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    commands = [
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca_cert,
            "-days",
            "2",
            "-subj",
            "/CN=lorakom test CA",
        ],
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            openssl,
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            extensions,
        ],
    ]
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True)
    return ca_cert, cert, key


def test_a_tls_source_connects_verifies_and_stores(fresh_db_url: str, tmp_path: Path) -> None:
    ca_cert, cert, key = make_certificates(tmp_path)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    # `user root`: a broker started as root keeps its identity, so it can read the key in
    # pytest's private temporary folder (ignored when the suite does not run as root).
    config.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        f"cafile {ca_cert}\ncertfile {cert}\nkeyfile {key}\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not port_answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The broker's certificate is not trusted without our CA: verification is really on.
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            socket.create_connection(("127.0.0.1", port)) as raw,
        ):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        traffic = Traffic()
        sources = f"""
[[source]]
name = "tls-{traffic.tag}"
kind = "tts"
municipality = "testtown"
host = "127.0.0.1"
port = {port}
ca_file = "{ca_cert}"
qos = 1
mqtt_version = "5"
topic = "{traffic.tts_topic_filter}"
"""
        bridge = start_bridge(fresh_db_url, sources, tmp_path, instance="tls")
        try:
            publish_tls(port, ca_cert, [traffic.tts_uplink(n) for n in range(25)])
            assert wait_for_uplinks(fresh_db_url, (f"tls-{traffic.tag}",), 25) == 25
        finally:
            bridge.stop()
    finally:
        broker.kill()
        broker.wait()
