"""pebble-compose.yml stays usable with the pytest plugin's external mode.

There is no Docker here, so the file is read, not run: its published ports, Pebble's
environment and the commands must match what the plugin and ``ExternalPebble.from_env`` expect,
and the environment documented in its header (and in docs/testing.md) must describe it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from acmelite.testing import ExternalPebble, PebbleServer

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "pebble-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, object], name: str) -> dict[str, object]:
    services = compose["services"]
    assert isinstance(services, dict)
    entry = services[name]
    assert isinstance(entry, dict)
    return entry


def published(entry: dict[str, object]) -> dict[int, int]:
    """container port -> host port."""
    ports = entry.get("ports", [])
    assert isinstance(ports, list)
    pairs = (str(p).split(":") for p in ports)
    return {int(container): int(host) for host, container in pairs}


def documented_env(text: str, prefix: str = "") -> dict[str, str]:
    return dict(re.findall(rf"{prefix}(ACMELITE_TEST_[A-Z_]+)=(\S+)", text))


def test_pebble_environment_matches_the_local_defaults(compose: dict[str, object]) -> None:
    env = service(compose, "pebble")["environment"]
    assert isinstance(env, dict)
    defaults = inspect.signature(PebbleServer).parameters

    # PebbleServer's defaults: no validation sleep, no authorization reuse, Pebble's own 5%
    # badNonce rate (nothing set), as in the plugin's acme_pebble.
    assert defaults["va_nosleep"].default is True
    assert env["PEBBLE_VA_NOSLEEP"] == "1"
    assert env["PEBBLE_AUTHZREUSE"] == str(defaults["authz_reuse"].default)
    assert defaults["nonce_reject"].default is None
    assert "PEBBLE_WFE_NONCEREJECT" not in env


def test_challtestsrv_is_pebble_dns_and_answers_with_the_host(compose: dict[str, object]) -> None:
    pebble = service(compose, "pebble")
    challtestsrv = service(compose, "challtestsrv")
    pebble_args = str(pebble["command"]).split()
    dns_args = str(challtestsrv["command"]).split()

    resolver = pebble_args[pebble_args.index("-dnsserver") + 1]
    assert resolver == f"challtestsrv{dns_args[dns_args.index('-dnsserver') + 1]}"
    for listener in ("-http01", "-https01", "-tlsalpn01", "-doh"):  # validation reaches the host
        assert dns_args[dns_args.index(listener) + 1] == '""'
    networks = compose["networks"]
    assert isinstance(networks, dict)
    gateway = networks["acmelite"]["ipam"]["config"][0]["gateway"]
    assert dns_args[dns_args.index("-defaultIPv4") + 1] == gateway


def test_documented_environment_describes_the_published_ports(
    compose: dict[str, object], tmp_path: Path
) -> None:
    env = documented_env(COMPOSE.read_text(), prefix=r"#\s+")
    env["ACMELITE_TEST_PEBBLE_CA"] = str(tmp_path / "pebble.minica.pem")
    Path(env["ACMELITE_TEST_PEBBLE_CA"]).write_text("a CA bundle\n")
    pebble_ports = published(service(compose, "pebble"))
    dns_ports = published(service(compose, "challtestsrv"))

    external = ExternalPebble.from_env(env)

    assert external is not None
    assert urlsplit(external.directory_url).port in pebble_ports.values()
    assert urlsplit(external.directory_url).path == "/dir"
    assert urlsplit(str(external.management_url)).port == pebble_ports[15000]
    challtestsrv_args = str(service(compose, "challtestsrv")["command"]).split()
    management = challtestsrv_args[challtestsrv_args.index("-management") + 1]
    assert urlsplit(str(external.challtestsrv_url)).port == dns_ports[int(management.strip(":"))]
    # Pebble's image validates http-01 on 5002 (its test/config/pebble-config.json)
    assert external.http_port == 5002
    assert "port 5002" in COMPOSE.read_text()


def test_docs_describe_the_same_external_pebble() -> None:
    compose_env = documented_env(COMPOSE.read_text(), prefix=r"#\s+")
    docs_env = documented_env((ROOT / "docs" / "testing.md").read_text(), prefix="export ")

    for name in (
        "ACMELITE_TEST_PEBBLE_URL",
        "ACMELITE_TEST_PEBBLE_MANAGEMENT_URL",
        "ACMELITE_TEST_CHALLTESTSRV_URL",
    ):
        assert docs_env[name] == compose_env[name], name
