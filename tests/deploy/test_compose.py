"""The docker-compose deployment, checked without a Docker engine.

The compose file is parsed and checked for what a deployment depends on; the pieces
that can run here run for real: the sources example through `load_sources`, the
Mosquitto configuration in a real Mosquitto, the Grafana users example through
`load_users`. (Grafana itself is provisioned through its API: tests/cli/test_grafana_provision.py.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.grafana.users import load_users
from ingest.config import SourceConfig, load_sources
from tests.conftest import free_port, port_answers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MOSQUITTO_CONF = ROOT / "deploy/mosquitto/mosquitto.conf"
SOURCES_EXAMPLE = ROOT / "deploy/sources.example.toml"
ENV_EXAMPLE = ROOT / "deploy/lorakom.env.example"
GRAFANA_ENV_EXAMPLE = ROOT / "deploy/grafana.env.example"
GRAFANA_USERS_EXAMPLE = ROOT / "deploy/grafana/users.example.toml"
ENTRYPOINT = ROOT / "deploy/docker-entrypoint.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def mosquitto_settings() -> dict[str, str]:
    settings = {}
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            settings.setdefault(name, value.strip())
    return settings


def long_running(compose: dict[str, Any]) -> dict[str, Any]:
    """The services `docker compose up` starts; one-shot tools sit behind a profile."""
    return {name: service for name, service in compose["services"].items() if "profiles" not in service}


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(long_running(compose)) == {"timescaledb", "mosquitto", "lorakom", "grafana"}
    assert set(services) - set(long_running(compose)) == {"grafana-provision"}
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["lorakom"]["build"] == "."
    assert services["grafana"]["image"].startswith("grafana/grafana")


def test_every_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    for name, service in long_running(compose).items():
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] == "unless-stopped", name
    lorakom_check = " ".join(compose["services"]["lorakom"]["healthcheck"]["test"])
    assert "/healthz" in lorakom_check


def test_lorakom_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    depends = compose["services"]["lorakom"]["depends_on"]
    assert depends == {
        "timescaledb": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
    }


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {"pgdata", "mosquitto-data", "grafana-data"}
    mounts = {name: service.get("volumes", []) for name, service in compose["services"].items()}
    assert "pgdata:/var/lib/postgresql/data" in mounts["timescaledb"]
    assert "mosquitto-data:/mosquitto/data" in mounts["mosquitto"]
    assert "grafana-data:/var/lib/grafana" in mounts["grafana"]


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                relative = source[2:]
                if relative == "deploy/sources.toml":  # the operator's copy of the example
                    assert SOURCES_EXAMPLE.exists()
                    continue
                if relative == "deploy/grafana/users.toml":  # likewise
                    assert GRAFANA_USERS_EXAMPLE.exists()
                    continue
                assert (ROOT / relative).exists(), f"{name} mounts missing {source}"
        for env_file in [service["env_file"]] if "env_file" in service else []:
            assert env_file == ("deploy/grafana.env" if name == "grafana" else "deploy/lorakom.env"), name
    assert ENV_EXAMPLE.exists()
    assert GRAFANA_ENV_EXAMPLE.exists()


def test_compose_interpolates_nothing_from_the_shell() -> None:
    """Compose substitutes ${…} from the shell, not from env_file: everything comes from the env file."""
    text = COMPOSE.read_text(encoding="utf-8")
    assert re.findall(r"(?<!\$)\$\{?[A-Za-z_]", text) == []


def test_env_example_is_consistent() -> None:
    values = env_example()
    url = values["LORAKOM_DB_URL"]
    assert url == f"postgresql://lorakom:{values['POSTGRES_PASSWORD']}@timescaledb:5432/lorakom"
    grafana = env_example(GRAFANA_ENV_EXAMPLE)
    # The provisioning command signs in as Grafana's admin, whose password Grafana's file sets.
    assert values["LORAKOM_GRAFANA_ADMIN_PASSWORD"] == grafana["GF_SECURITY_ADMIN_PASSWORD"]
    # Grafana holds no secret of lorakom's: no database login, no network-server key.
    assert set(grafana) == {"GF_SECURITY_ADMIN_PASSWORD"}
    assert not [name for name in values if name.startswith("GF_")]
    assert values["LORAKOM_GRAFANA_URL"] == "http://grafana:3000"
    assert not [name for name in values if name.startswith("GRAFANA_DB_")], "the shared reader login is gone"
    # Every secret the sources example names is in the env example.
    for source in tomllib.loads(SOURCES_EXAMPLE.read_text(encoding="utf-8"))["source"]:
        for key in ("password_env", "storage_api_key_env", "webhook_secret_env"):
            if key in source:
                assert source[key] in values, f"{source[key]} is missing from lorakom.env.example"


def test_grafana_gets_no_data_source_from_files(compose: dict[str, Any]) -> None:
    """A file-provisioned data source would be one login for every town: there is none."""
    grafana = compose["services"]["grafana"]
    assert not [mount for mount in grafana.get("volumes", []) if "provisioning" in mount]
    assert not (ROOT / "deploy/grafana/provisioning").exists()
    assert not any(name.startswith("GF_DASHBOARDS") for name in grafana["environment"])


def test_grafana_provision_is_a_one_shot_after_grafana(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana-provision"]
    assert service["image"] == compose["services"]["lorakom"]["image"]
    assert service["command"][:2] == ["grafana", "provision"]
    assert service["restart"] == "no"
    assert service["depends_on"]["grafana"] == {"condition": "service_healthy"}
    mounted = {mount.split(":")[1] for mount in service["volumes"]}
    command = service["command"]
    assert command[command.index("--dashboards") + 1] in mounted
    assert command[command.index("--users") + 1] in mounted


def test_grafana_users_example_loads() -> None:
    users = load_users(GRAFANA_USERS_EXAMPLE)
    assert {user.role for user in users.town_user} == {"Admin", "Viewer"}


def test_mosquitto_queues_hold_a_flood() -> None:
    settings = mosquitto_settings()
    assert settings["persistence"] == "true"
    assert int(settings["max_queued_messages"]) >= 100_000
    assert int(settings["max_inflight_messages"]) >= 20_000
    assert settings["persistence_location"] == "/mosquitto/data/"


def test_mosquitto_accepts_its_configuration(tmp_path: Path) -> None:
    """The file runs in a real Mosquitto (listener and data folder moved to fit this machine)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("the mosquitto binary is needed (Debian/Ubuntu: apt install mosquitto)")
    port = free_port()
    tmp_path.chmod(0o777)  # Mosquitto started as root drops to its own user
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    text = text.replace("listener 1883", f"listener {port} 127.0.0.1")
    text = text.replace("/mosquitto/data/", f"{tmp_path}/")
    config = tmp_path / "mosquitto.conf"
    config.write_text(text)
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as output:
        process = subprocess.Popen([binary, "-c", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not port_answers("127.0.0.1", port):
            if process.poll() is not None:
                pytest.fail(f"mosquitto rejected the configuration: {log.read_text()}")
            assert time.monotonic() < deadline, "mosquitto did not open its port"
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sources_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    sources = load_sources(SOURCES_EXAMPLE)
    assert [source.kind.value for source in sources] == ["tts", "chirpstack-v4"]
    assert len({source.municipality for source in sources}) == 2
    for source in sources:
        assert source.password() is not None
    tts, chirpstack = sources
    assert tts.uses_tls
    assert tts.effective_port == 8883
    assert tts.storage_api_key() is not None
    assert chirpstack.host == "mosquitto"
    assert chirpstack.effective_qos == 1


def test_sources_example_documents_every_key() -> None:
    """Each SourceConfig key appears in the example, set or as a commented line."""
    text = SOURCES_EXAMPLE.read_text(encoding="utf-8")
    written = set(re.findall(r"^#?\s*([a-z_0-9]+)\s*=", text, flags=re.MULTILINE))
    missing = set(SourceConfig.model_fields) - written
    assert not missing, f"document these keys in {SOURCES_EXAMPLE.name}: {sorted(missing)}"


DOCKERFILE = ROOT / "Dockerfile"


def ignore_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `*` stays within one folder, `**` crosses them,
    and a pattern naming a folder covers everything in it."""
    text = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if part.startswith("**"):
            text += ".*"
        elif part == "*":
            text += "[^/]*"
        elif part == "?":
            text += "[^/]"
        else:
            text += re.escape(part)
    return re.compile(rf"{text}(/.*)?")


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching a path decides; `!` patterns re-include."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and ignore_pattern(line.lstrip("!")).fullmatch(path):
            excluded = not line.startswith("!")
    return excluded


def test_dockerfile_runs_lorakom_as_a_user_with_migrations_first() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    healthcheck = re.search(r"^HEALTHCHECK .*\\\n.*$", text, flags=re.MULTILINE)
    assert healthcheck
    assert "/healthz" in healthcheck.group(0)
    assert re.search(r'^ENTRYPOINT \["lorakom-entrypoint"\]$', text, flags=re.MULTILINE)
    assert re.search(r'^CMD \["run", "--config", "/etc/lorakom/sources.toml"\]$', text, flags=re.MULTILINE)
    script = ENTRYPOINT.read_text(encoding="utf-8")
    assert script.index("lorakom db upgrade") < script.index('exec lorakom "$@"')


def test_dockerfile_copies_only_what_the_build_context_holds() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE):
        *sources, _target = line.split()
        for source in sources:
            if "*" in source:
                continue
            assert (ROOT / source).exists(), source
            assert not dockerignore_excludes(source), (
                f".dockerignore leaves {source} out of the build context"
            )
    assert dockerignore_excludes(".venv")
    assert dockerignore_excludes("tests/conftest.py")
    assert dockerignore_excludes("deploy/lorakom.env")
    assert dockerignore_excludes("deploy/grafana.env")
    assert dockerignore_excludes("api/__pycache__/app.cpython-311.pyc")
