"""The sources file: defaults per network server, unknown keys refused, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import ConfigurationError
from domain.uplink import NetworkServer
from ingest.adapters import default_topics
from ingest.config import IngestSettings, load_sources

TTS = """
[[source]]
name = "paderborn-tts"
kind = "tts"
municipality = "paderborn"
host = "eu1.cloud.thethings.network"
username = "paderborn-sensors@ttn"
password_env = "PADERBORN_TTS_API_KEY"
"""

CHIRPSTACK = """
[[source]]
name = "lippstadt-cs"
kind = "chirpstack-v4"
municipality = "lippstadt"
host = "chirpstack.lippstadt.example"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return path


def test_each_kind_gets_the_defaults_its_server_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PADERBORN_TTS_API_KEY", "NNSXS.SECRET")
    tts, chirpstack = load_sources(write(tmp_path, TTS + CHIRPSTACK))
    assert (tts.uses_tls, tts.effective_port, tts.effective_qos, tts.effective_mqtt_version) == (
        True,
        8883,
        0,
        "3.1.1",
    )
    assert tts.tts_application_id == "paderborn-sensors"
    assert tts.topics(default_topics(NetworkServer.TTS)) == ("v3/+/devices/+/up", "v3/+/devices/+/join")
    assert (chirpstack.uses_tls, chirpstack.effective_port, chirpstack.effective_qos) == (False, 1883, 1)
    assert chirpstack.effective_mqtt_version == "5"
    password = tts.password()
    assert password is not None
    assert password.get_secret_value() == "NNSXS.SECRET"
    assert "NNSXS" not in repr(tts) + repr(password) + str(password)


def test_unknown_keys_are_errors_with_their_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"source\.0\.pasword_env"):
        load_sources(write(tmp_path, CHIRPSTACK + 'pasword_env = "X"\n'))


def test_a_missing_secret_names_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PADERBORN_TTS_API_KEY", raising=False)
    (tts,) = load_sources(write(tmp_path, TTS))
    with pytest.raises(ConfigurationError, match="PADERBORN_TTS_API_KEY"):
        tts.password()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CHIRPSTACK + CHIRPSTACK, "unique"),
        (CHIRPSTACK.replace('kind = "chirpstack-v4"', 'kind = "loriot"'), "kind"),
        (CHIRPSTACK.replace('host = "chirpstack.lippstadt.example"\n', ""), "MQTT host"),
        ("[[source]]\nname = 'Bad Name'\n", "name"),
        ("this is not toml", "not valid TOML"),
        ("", "source"),
    ],
)
def test_broken_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_sources(write(tmp_path, text))


def test_the_bridge_refuses_a_shared_group_that_is_not_one_topic_level() -> None:
    with pytest.raises(ValueError, match="shared_group"):
        IngestSettings(shared_group="a/b")
