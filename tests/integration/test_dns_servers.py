"""RFC 2136 against BIND, Knot DNS and PowerDNS: what each server answers, and what we say.

Every failure the rfc2136 solver explains (acmelite/dns/update.py) is reproduced here against
the real server, with its whole message: wrong secret, unknown key, a key the zone does not
allow, updates turned off, a zone the server does not serve. Then the key file formats,
the TTL of an existing record set, and whole orders from Pebble resolving through Knot and
PowerDNS.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from acmelite.dns.propagation import PropagationSettings
from acmelite.errors import SolverError
from acmelite.solvers.rfc2136 import Rfc2136Solver, parse_tsig_key
from acmelite.testing.bind import BindServer
from acmelite.testing.dns_conformance import make_dns_task
from acmelite.testing.knot import KnotServer
from acmelite.testing.pebble import Pebble, PebbleServer
from acmelite.testing.powerdns import PowerDnsServer
from tests.support import issue_argv, run_cli, verify_chain, without_http

WRONG = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yaWdodC1vbmUhISE="
Server = BindServer | KnotServer | PowerDnsServer


def solver(server: Server, **options: str) -> Rfc2136Solver:
    return Rfc2136Solver(
        server.address,
        options.get("key", server.key_name),
        options.get("secret", server.key_secret),
        zone=options.get("zone"),
        propagation=PropagationSettings(timeout=5, resolver=server.address),
    )


def failure(server: Server, name: str = "example.test", **options: str) -> str:
    """The message of a perform that must fail (cleanup runs too, as the client does)."""
    s = solver(server, **options)
    task = make_dns_task(name)
    with pytest.raises(SolverError) as caught:
        s.perform([task])
    for text in (str(caught.value), repr(s)):
        assert server.key_secret not in text and WRONG not in text
    with pytest.raises(SolverError):
        s.cleanup([task])
    return str(caught.value)


# -- BIND ------------------------------------------------------------------------------------


def test_bind_errors(bind: BindServer) -> None:
    at = f"by {bind.address} for zone example.test"
    assert failure(bind, secret=WRONG) == (
        f"TSIG key 'acmelite-test' rejected {at}: BADSIG — check the secret"
        ' (key "acmelite-test" in named.conf)'
    )
    assert failure(bind, key="no-such-key") == (
        f"TSIG key 'no-such-key' rejected {at}: BADKEY — the server does not know a key of this"
        " name and algorithm (hmac-sha256)"
    )
    limited = failure(bind, key=bind.limited_key_name, secret=bind.limited_key_secret)
    assert limited == (
        f"server {bind.address} refused the update for zone example.test: the TSIG key"
        " 'acmelite-limited' may not update this name (check update-policy: grant"
        " acmelite-limited zonesub TXT;)"
    )
    assert failure(bind, zone="test", name="www.example.test") == (
        f"server {bind.address} is not authoritative for zone test (NOTAUTH)"
    )


# -- Knot DNS --------------------------------------------------------------------------------


def test_knot_errors(knot: KnotServer) -> None:
    at = f"by {knot.address} for zone example.test"
    assert failure(knot, secret=WRONG) == (
        f"TSIG key 'acmelite-test' rejected {at}: BADSIG — check the secret"
        " (key id acmelite-test in knot.conf)"
    )
    acl = (
        " lets this key update it: check knot.conf for the key and for an acl with key: {key},"
        " action: update (update-type: [TXT]) in zone example.test's acl list"
    )
    # Knot answers the same for a key it does not know and for a known key without an ACL.
    assert failure(knot, key="no-such-key") == (
        f"TSIG key 'no-such-key' rejected {at}: BADKEY — Knot DNS answers this when it knows no"
        " key 'no-such-key' with algorithm hmac-sha256 and also when no ACL of the zone"
        + acl.format(key="no-such-key")
    )
    assert failure(knot, key=knot.limited_key_name, secret=knot.limited_key_secret) == (
        f"TSIG key 'acmelite-limited' rejected {at}: BADKEY — Knot DNS answers this when it"
        " knows no key 'acmelite-limited' with algorithm hmac-sha256 and also when no ACL of"
        " the zone" + acl.format(key="acmelite-limited")
    )
    assert failure(knot, zone="test", name="www.example.test") == (
        f"server {knot.address} is not authoritative for zone test (NOTAUTH)"
    )


def test_knot_limited_key_works_in_its_zone(knot: KnotServer) -> None:
    s = solver(knot, key=knot.limited_key_name, secret=knot.limited_key_secret)
    task = make_dns_task("x.acme-dns.test")
    s.perform([task])
    assert knot.txt_values("_acme-challenge.x.acme-dns.test") == {task.dns01_value}
    s.cleanup([task])
    assert knot.txt_values("_acme-challenge.x.acme-dns.test") == set()


# -- PowerDNS --------------------------------------------------------------------------------


def test_powerdns_errors(powerdns: PowerDnsServer) -> None:
    unsigned = (
        f"server {powerdns.address} refused the update for zone example.test without signing"
        " its answer: PowerDNS answers so when it cannot verify the signature: it knows no key"
        " {key!r} with algorithm hmac-sha256 (pdnsutil list-tsig-keys), or the secret differs"
    )
    assert failure(powerdns, secret=WRONG) == unsigned.format(key="acmelite-test")
    assert failure(powerdns, key="no-such-key") == unsigned.format(key="no-such-key")
    refused = (
        f"server {powerdns.address} refused the update for zone {{zone}}: the TSIG key {{key!r}}"
        " may not update this name (PowerDNS answers so when it has no zone {zone}, when"
        " dnsupdate=yes is missing from pdns.conf, when the zone's TSIG-ALLOW-DNSUPDATE metadata"
        " does not name the key (pdnsutil set-meta {zone} TSIG-ALLOW-DNSUPDATE {key}), or when"
        " neither allow-dnsupdate-from nor the zone's ALLOW-DNSUPDATE-FROM admits this address)"
    )
    limited = failure(powerdns, key=powerdns.limited_key_name, secret=powerdns.limited_key_secret)
    assert limited == refused.format(zone="example.test", key="acmelite-limited")
    # a zone it does not serve: REFUSED too (allow-dnsupdate-from is empty here)
    assert failure(powerdns, zone="test", name="www.example.test") == refused.format(
        zone="test", key="acmelite-test"
    )


def test_powerdns_with_updates_off() -> None:
    server = PowerDnsServer(("example.test",), dns_update=False)
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"PowerDNS: {exc}")
    try:
        message = failure(server)
    finally:
        server.stop()
    assert message.startswith(
        f"server {server.address} refused the update for zone example.test: the TSIG key"
        " 'acmelite-test' may not update this name (PowerDNS answers so when it has no zone"
        " example.test, when dnsupdate=yes is missing from pdns.conf"
    )


def test_an_unknown_server_kind_gets_every_explanation(bind: BindServer) -> None:
    """A server that hides its version: the message covers each kind's rule."""
    from acmelite.dns import update

    original = update.server_kind
    update.server_kind = lambda address, port, timeout=1.0: ""  # type: ignore[assignment]
    try:
        message = failure(bind, key=bind.limited_key_name, secret=bind.limited_key_secret)
        badkey = failure(bind, key="no-such-key")
    finally:
        update.server_kind = original
    assert message.endswith(
        "(check the server's update rules — BIND: update-policy { grant acmelite-limited zonesub"
        " TXT; }; PowerDNS: dnsupdate=yes and the zone's TSIG-ALLOW-DNSUPDATE metadata; Knot"
        " DNS: the zone's update acl)"
    )
    assert badkey.endswith(
        "(on Knot DNS also: no ACL of zone example.test lets this key update it)"
    )


# -- the TTL of a record set that exists ------------------------------------------------------


@pytest.mark.parametrize("kind", ["bind", "knot", "powerdns"])
def test_an_existing_record_set_keeps_its_ttl(kind: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(kind)
    record = "_acme-challenge.ttl.example.test"
    server.add_txt(record, "from-another-client", ttl=3600)
    try:
        task = make_dns_task("ttl.example.test")
        s = solver(server)
        s.perform([task])
        assert server.txt_values(record) == {"from-another-client", task.dns01_value}
        assert server.txt_ttl(record) == 3600
        s.cleanup([task])
        assert server.txt_ttl(record) == 3600
        # Without the lookup, the server would take our TTL for the whole set:
        server.add_txt(record, "added-with-ttl-60", ttl=60)
        assert server.txt_ttl(record) == (3600 if kind == "powerdns" else 60)
    finally:
        server.delete_txt(record)
    fresh = make_dns_task("new.example.test")
    s.perform([fresh])
    assert server.txt_ttl("_acme-challenge.new.example.test") == 60  # our TTL for a new set
    s.cleanup([fresh])


# -- key files --------------------------------------------------------------------------------


def test_knot_key_file_and_one_line_form_are_read(knot: KnotServer) -> None:
    assert parse_tsig_key(knot.key_file) == (knot.key_name, "hmac-sha256", knot.key_secret)
    two = knot.key_file + "key:\n  - id: other\n    algorithm: hmac-sha512\n    secret: b3RoZXI=\n"
    assert parse_tsig_key(two, "other") == ("other", "hmac-sha512", "b3RoZXI=")
    line = f"hmac-sha384:{knot.key_name}:{knot.key_secret}\n"
    assert parse_tsig_key(line) == (knot.key_name, "hmac-sha384", knot.key_secret)
    from acmelite.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"no key 'nope' in the TSIG secret \(it has"):
        parse_tsig_key(two, "nope")


# -- whole orders: Pebble resolving through Knot and PowerDNS --------------------------------


def _issue_with_rfc2136(
    pebble: Pebble,
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_file_text: str,
    *names: str,
) -> None:
    key_file = tmp_path / "tsig.key"
    key_file.write_text(key_file_text)
    argv = [
        *without_http(issue_argv(pebble, tmp_path, *names)),
        "--challenge",
        "dns-01",
        "--dns",
        "rfc2136",
        "--dns-server",
        server.address,
        "--tsig-secret-file",
        str(key_file),
        "--dns-nameserver-port",
        str(server.port),
        "--dns-propagation-timeout",
        "10",
    ]
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    leaf = verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), names[0])
    assert leaf is not None


def test_pebble_through_knot_with_a_knot_key_file(
    pebble_factory: Callable[..., PebbleServer],
    knot: KnotServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key file as `keymgr -t` writes it; the propagation check asks ns.example.test
    (127.0.0.1) on Knot's port: --dns-nameserver-port, no --dns-resolver."""
    pebble = pebble_factory(dns_server=knot.address)
    _issue_with_rfc2136(
        pebble, knot, tmp_path, capsys, knot.key_file, "example.test", "*.example.test"
    )


def test_pebble_through_powerdns_dns_update(
    pebble_factory: Callable[..., PebbleServer],
    powerdns: PowerDnsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pebble = pebble_factory(dns_server=powerdns.address)
    key = f'key "{powerdns.key_name}" {{ algorithm hmac-sha256; secret "{powerdns.key_secret}"; }};'
    _issue_with_rfc2136(
        pebble, powerdns, tmp_path, capsys, key, f"u{secrets.token_hex(3)}.example.test"
    )
