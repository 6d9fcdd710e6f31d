"""The provider-API solvers against the real PowerDNS: ``powerdns`` (its HTTP API) and
``lexicon`` (dns-lexicon's powerdns provider), from the library and the CLI, with Pebble
resolving through the same PowerDNS.

Also what they must never do: take a credential inline, hang on a server that does not
answer, lose the API's own error text — and, for lexicon, guess the zone from the public
suffix list or reach the network for it (a guard records every non-loopback connection).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acmelite.dns.propagation import PropagationSettings
from acmelite.errors import CleanupFailed, SolverError
from acmelite.http import ApiError, JsonApi
from acmelite.solvers.lexicon import LexiconSolver
from acmelite.solvers.powerdns import PowerDnsSolver
from acmelite.testing.bind import BindServer
from acmelite.testing.blackhole import Blackhole
from acmelite.testing.dns_conformance import make_dns_task
from acmelite.testing.pebble import PebbleServer
from acmelite.testing.powerdns import PowerDnsServer
from tests.support import issue_argv, run_cli, verify_chain, without_http

NAMES = ["*.example.test", "example.test"]


def _propagation(powerdns: PowerDnsServer) -> PropagationSettings:
    return PropagationSettings(timeout=10, resolver=powerdns.address)


# -- whole orders from the command line -----------------------------------------------------


def _argv(pebble: PebbleServer, powerdns: PowerDnsServer, tmp_path: Path, *extra: str) -> list[str]:
    return [
        *without_http(issue_argv(pebble, tmp_path, *NAMES)),
        "--challenge",
        "dns-01",
        *extra,
        "--dns-resolver",
        powerdns.address,
        "--dns-propagation-timeout",
        "10",
    ]


def test_cli_issues_apex_and_wildcard_with_the_powerdns_api(
    pebble_factory: Callable[..., PebbleServer],
    powerdns: PowerDnsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pebble = pebble_factory(dns_server=powerdns.address)
    key = tmp_path / "pdns-api.key"
    key.write_text(powerdns.api_key + "\n")
    argv = _argv(
        pebble,
        powerdns,
        tmp_path,
        "--dns",
        "powerdns",
        "--dns-option",
        f"api-url={powerdns.api_url}",
        "--dns-option",
        f"api-key=@{key}",
    )
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "www.example.test")
    assert powerdns.api_key not in result.err + result.out
    stored = (tmp_path / "out/renewal.json").read_text()
    assert f'"api-key": "@{key}"' in stored and powerdns.api_key not in stored
    # renew rebuilds the solver from renewal.json; the key from the environment this time
    config = json.loads(stored)
    del config["challenge"]["options"]["api-key"]
    (tmp_path / "out/renewal.json").write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ACMELITE_DNS_API_KEY", powerdns.api_key)
        renewed = run_cli(["renew", "--force", str(tmp_path / "out")], capsys)
    assert renewed.code == 3, renewed.err + renewed.out


def test_cli_issues_apex_and_wildcard_with_lexicon(
    pebble_factory: Callable[..., PebbleServer],
    powerdns: PowerDnsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pebble = pebble_factory(dns_server=powerdns.address)
    token = tmp_path / "token"
    token.write_text(powerdns.api_key)
    argv = _argv(
        pebble,
        powerdns,
        tmp_path,
        "--dns",
        "lexicon",
        "--dns-option",
        "provider=powerdns",
        "--dns-option",
        f"pdns_server={powerdns.api_url}",
        "--dns-option",
        f"auth_token=@{token}",
    )
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "www.example.test")
    assert "with lexicon provider powerdns" in result.err


def test_lexicon_reads_lexicons_own_environment_variables(
    powerdns: PowerDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEXICON_POWERDNS_AUTH_TOKEN", powerdns.api_key)
    monkeypatch.setenv("LEXICON_POWERDNS_PDNS_SERVER", powerdns.api_url)
    solver = LexiconSolver("powerdns", propagation=_propagation(powerdns))
    task = make_dns_task("env.example.test")
    solver.perform([task])
    assert powerdns.txt_values("_acme-challenge.env.example.test") == {task.dns01_value}
    solver.cleanup([task])


# -- what goes wrong, said in the API's words -----------------------------------------------


def test_powerdns_wrong_api_key_and_wrong_server_id(powerdns: PowerDnsServer) -> None:
    task = make_dns_task("example.test")
    wrong = PowerDnsSolver(
        powerdns.api_url, "not-the-key", zone="example.test", propagation=_propagation(powerdns)
    )
    with pytest.raises(SolverError) as caught:
        wrong.perform([task])
    assert str(caught.value) == (
        "cannot read zone example.test from PowerDNS: GET"
        f" {powerdns.api_url}/api/v1/servers/localhost/zones/example.test. answered 401:"
        " Unauthorized; the API key is not the server's (api-key in pdns.conf)"
    )
    assert caught.value.identifiers == ("example.test",)
    assert "not-the-key" not in str(caught.value) + repr(wrong)
    with pytest.raises(CleanupFailed) as left:  # it cannot even look: it says so
        wrong.cleanup([task])
    assert left.value.records == (f'_acme-challenge.example.test. TXT "{task.dns01_value}"',)

    other = PowerDnsSolver(
        powerdns.api_url,
        powerdns.api_key,
        server_id="elsewhere",
        propagation=_propagation(powerdns),
    )
    with pytest.raises(
        SolverError, match=r"answered 404: Not Found; check the API URL and server-id"
    ):
        other.perform([make_dns_task("example.test")])


def test_powerdns_names_a_zone_it_does_not_have(powerdns: PowerDnsServer, bind: BindServer) -> None:
    """The zone comes from the API (the names are looked up at BIND, which knows no
    unknown.test either): the error says which zones were asked for."""
    solver = PowerDnsSolver(
        powerdns.api_url,
        powerdns.api_key,
        propagation=PropagationSettings(timeout=0, resolver=bind.address),
    )
    with pytest.raises(SolverError) as caught:
        solver.perform([make_dns_task("www.unknown.test")])
    assert str(caught.value) == (
        "could not find the DNS zone of _acme-challenge.www.unknown.test.: PowerDNS at"
        f" {powerdns.api_url}/api/v1/servers/localhost has no zone that holds"
        " _acme-challenge.www.unknown.test. (asked for www.unknown.test., unknown.test.,"
        " test.); create it or give the zone option"
    )


def test_powerdns_carries_the_apis_error_message(powerdns: PowerDnsServer) -> None:
    """A zone option that does not hold the record's name: PowerDNS's 422 text is kept."""
    solver = PowerDnsSolver(
        powerdns.api_url,
        powerdns.api_key,
        zone="acme-dns.test",
        propagation=PropagationSettings(timeout=0, resolver=powerdns.address),
    )
    solver._zone_for = lambda name: "acme-dns.test."  # type: ignore[method-assign]
    with pytest.raises(SolverError) as caught:
        solver.perform([make_dns_task("x.example.test")])
    assert str(caught.value).endswith(
        "answered 422: RRset _acme-challenge.x.example.test. IN TXT: Name is out of zone"
    )


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: accepts connections and never answers."""
    with Blackhole(scheme="http", path="") as hole:
        yield hole.url


def test_an_api_that_never_answers_is_given_up_on(
    silent_server: str, powerdns: PowerDnsServer
) -> None:
    """Every request has a timeout — lexicon's provider too, which sets none itself."""
    settings = PropagationSettings(timeout=0, resolver=powerdns.address)
    pdns = PowerDnsSolver(
        silent_server, "key", zone="example.test", timeout=0.5, propagation=settings
    )
    lexicon = LexiconSolver(
        "powerdns",
        {"auth_token": "key", "pdns_server": silent_server},
        zone="example.test",
        timeout=0.5,
        propagation=settings,
    )
    for solver, expected in ((pdns, "no answer within 0.5 s"), (lexicon, "no answer in time")):
        started = time.monotonic()
        with pytest.raises(SolverError) as caught:
            solver.perform([make_dns_task("example.test")])
        elapsed = time.monotonic() - started
        assert expected in str(caught.value), caught.value
        assert elapsed < 8, f"{type(solver).__name__} took {elapsed:.1f} s"


def test_lexicon_errors_keep_the_providers_words(powerdns: PowerDnsServer) -> None:
    solver = LexiconSolver(
        "powerdns",
        {"auth_token": "wrong", "pdns_server": powerdns.api_url},
        propagation=_propagation(powerdns),
    )
    with pytest.raises(SolverError) as caught:
        solver.perform([make_dns_task("example.test")])
    assert str(caught.value) == (
        "lexicon provider 'powerdns' could not open zone example.test: HTTP 401 Unauthorized:"
        " Unauthorized"
    )
    assert "wrong" not in repr(solver)


def test_lexicon_options_are_checked_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "issue",
        "-d",
        "x.example.test",
        "--out",
        str(tmp_path / "o"),
        "--challenge",
        "dns-01",
        "--dns",
        "lexicon",
        "--dns-option",
        "provider=powerdns",
    ]
    inline = run_cli([*base, "--dns-option", "auth_token=plain-text-token"], capsys)
    assert inline.code == 2
    assert (
        "option 'auth_token' of solver 'lexicon' is secret and is not taken inline (it would be"
        " stored and visible to other users): give it as auth_token=@PATH (a file read at every"
        " run) or in $LEXICON_<PROVIDER>_AUTH_TOKEN"
    ) in inline.err
    assert "plain-text-token" not in inline.err + inline.out
    unknown = run_cli([*base, "--dns-option", "colour=blue"], capsys)
    assert unknown.code == 2
    assert "lexicon provider 'powerdns' has no option 'colour'; its options: auth_token," in (
        unknown.err
    )
    nosuch = run_cli([*base[:-1], "provider=nosuchdns"], capsys)
    assert nosuch.code == 2
    assert "dns-lexicon has no provider 'nosuchdns'; its providers: " in nosuch.err
    assert not (tmp_path / "o").exists()


def test_plugins_lists_the_provider_solvers(capsys: pytest.CaptureFixture[str]) -> None:
    text = run_cli(["plugins"], capsys).out
    assert "powerdns  dns-01  from acmelite" in text
    assert "    api-key [required, secret]: the API key" in text
    assert "lexicon  dns-01  from acmelite" in text
    assert "    provider [required]: the dns-lexicon provider" in text


# -- lexicon never guesses the zone, never downloads the public suffix list -----------------


class NetworkGuard:
    """Records (and refuses) every name lookup and connection that is not loopback."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
            if not _loopback(host):
                self.attempts.append(f"lookup {host}")
                raise socket.gaierror(socket.EAI_NONAME, "network guard: no lookups here")
            return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

        def connect(sock: socket.socket, address: object) -> None:
            host = address[0] if isinstance(address, tuple) else address
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(host):
                self.attempts.append(f"connect {address}")
                raise OSError("network guard: no connections here")
            real_connect(sock, address)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)


def _loopback(host: object) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    return text in ("localhost", "::1") or text.startswith("127.") or text == "None"


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> NetworkGuard:
    monkeypatch.setenv("TLDEXTRACT_CACHE_PATH", str(tmp_path / "tld-cache"))
    return NetworkGuard(monkeypatch)


def test_lexicon_solver_makes_no_network_attempt_beyond_the_zones_servers(
    powerdns: PowerDnsServer, guard: NetworkGuard, tmp_path: Path
) -> None:
    """An internal name (``a.example.test``): acmelite's SOA walk finds ``example.test``;
    lexicon's public-suffix guess would say ``test`` — and download the list first."""
    solver = LexiconSolver(
        "powerdns",
        {"auth_token": powerdns.api_key, "pdns_server": powerdns.api_url},
        propagation=_propagation(powerdns),
    )
    task = make_dns_task("a.example.test")
    solver.perform([task])
    assert powerdns.txt_values("_acme-challenge.a.example.test") == {task.dns01_value}
    solver.cleanup([task])
    assert guard.attempts == []
    assert not (tmp_path / "tld-cache").exists()


def test_the_network_guard_sees_lexicons_own_client_reach_out(
    guard: NetworkGuard, tmp_path: Path, powerdns: PowerDnsServer
) -> None:
    """The check above would pass with a guard that sees nothing: lexicon's own Client,
    given the same name, tries to download the public suffix list (and gets a wrong zone)."""
    from lexicon.client import Client
    from lexicon.config import ConfigResolver

    config = ConfigResolver().with_dict(
        {
            "provider_name": "powerdns",
            "domain": "_acme-challenge.a.example.test",
            "powerdns": {"auth_token": powerdns.api_key, "pdns_server": powerdns.api_url},
        }
    )
    client = Client(config)
    assert any("publicsuffix.org" in a for a in guard.attempts), guard.attempts
    assert client.config.resolve("lexicon:domain") == "test."  # the wrong zone: a guess
    assert os.environ["TLDEXTRACT_CACHE_PATH"] == str(tmp_path / "tld-cache")


# -- the JSON client on its own --------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'"' + b"x" * 3000 + b'"')
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://192.0.2.1/elsewhere")
            self.end_headers()
        elif self.path == "/error":
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "database is locked\\n\\u001b[31m (5)"}')
        else:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not json")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_json_api_caps_answers_refuses_redirects_and_cleans_error_text(api_server: str) -> None:
    api = JsonApi(api_server, {"X-API-Key": "k"}, max_answer=1024)
    with pytest.raises(ApiError, match=r"is larger than 1024 bytes"):
        api.request("GET", "/big")
    with pytest.raises(ApiError, match=r"answered a redirect \(302\)"):
        api.request("GET", "/redirect")
    with pytest.raises(ApiError) as caught:
        api.request("GET", "/error")
    assert caught.value.status == 500
    assert caught.value.detail == "database is locked [31m (5)"  # one line, no control bytes
    with pytest.raises(ApiError, match="the answer is not JSON"):
        api.request("GET", "/text")
    api.close()
