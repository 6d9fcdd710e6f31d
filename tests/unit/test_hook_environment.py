"""Hooks get the caller's environment but never acmelite's own secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from acmelite.challenges import ChallengeTask
from acmelite.deploy import run_deploy_hook
from acmelite.models import Challenge, Identifier
from acmelite.solvers.hook import HookSolver

SECRETS = {
    "ACMELITE_TSIG_SECRET": "c2VjcmV0LXRzaWc=",
    "ACMELITE_DNS_TSIG_SECRET": "c2VjcmV0LWRucy10c2ln",
    "ACMELITE_DNS_API_KEY": "pdns-api-key-value",
    "ACMELITE_EAB_HMAC_KEY": "ZWFiLWtleQ",
}


def test_deploy_hook_gets_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KUBECONFIG", "/etc/kube.conf")
    dump = tmp_path / "env.json"
    script = f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"
    run_deploy_hook(f'{sys.executable} -c "{script}"', cert_dir=tmp_path, names=["a.test"])
    env = json.loads(dump.read_text())
    assert env["KUBECONFIG"] == "/etc/kube.conf"
    assert env["ACMELITE_NAMES"] == "a.test"
    assert not set(SECRETS) & set(env)
    assert not any(v in json.dumps(env) for v in SECRETS.values())


def test_dns_hook_gets_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    dump = tmp_path / "env.json"
    hook = tmp_path / "hook.py"
    hook.write_text(
        f"import json, os, sys\njson.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
    )
    from acmelite.dns.propagation import PropagationSettings

    solver = HookSolver([sys.executable, str(hook)], PropagationSettings(timeout=0))
    task = ChallengeTask(
        identifier=Identifier(type="dns", value="a.example.test"),
        challenge=Challenge(type="dns-01", url="u", status="pending", token="tok"),
        key_authorization="tok.thumb",
    )
    solver.perform([task])
    solver.cleanup([task])
    env = json.loads(dump.read_text())
    assert env["ACMELITE_DNS_RECORD"] == "_acme-challenge.a.example.test."
    assert not set(SECRETS) & set(env)


def test_dns_hook_without_a_findable_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No zone found, and no propagation check that needs one: the hook runs, told zone "";
    with the zone option, told that zone. When the check needs the zone, the run fails."""
    from acmelite.dns import challenge
    from acmelite.dns.propagation import PropagationSettings
    from acmelite.errors import DnsQueryError, SolverError

    def no_zone(lookup: object, name: str) -> str:
        raise DnsQueryError(f"no SOA record found at or above {name}")

    monkeypatch.setattr(challenge, "follow_cname", lambda lookup, name: name)
    monkeypatch.setattr(challenge, "find_zone", no_zone)
    dump = tmp_path / "zones.txt"
    hook = [
        sys.executable,
        "-c",
        f"import os; open({str(dump)!r}, 'a').write(repr(os.environ['ACMELITE_DNS_ZONE']))",
    ]
    task = ChallengeTask(
        identifier=Identifier(type="dns", value="a.example.test"),
        challenge=Challenge(type="dns-01", url="u", status="pending", token="tok"),
        key_authorization="tok.thumb",
    )
    for solver in (
        HookSolver(hook, PropagationSettings(timeout=0)),
        HookSolver(hook, PropagationSettings(timeout=0), zone="example.test"),
    ):
        solver.perform([task])
        solver.cleanup([task])
    assert dump.read_text() == repr("") * 2 + repr("example.test.") * 2
    needs = HookSolver(hook, PropagationSettings(timeout=5))
    with pytest.raises(SolverError, match="could not find the DNS zone of _acme-challenge"):
        needs.perform([task])
