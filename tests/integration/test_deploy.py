"""Deploy hooks and the Kubernetes Secret, after issue and after renew, against Pebble."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.managed import STATE_FILE
from acmelite.testing.pebble import Pebble
from tests.integration.test_renew import issue, renew, window_in_the_past
from tests.support import issue_argv, key_matches_cert, run_cli, verify_chain

#: Writes its environment and the certificate it saw beside the output directory.
RECORDING_HOOK = (
    'env | grep "^ACMELITE_" | sort > "$ACMELITE_CERT_DIR/../hook.env";'
    ' n=$(ls "$ACMELITE_CERT_DIR"/../deployed-*.pem 2>/dev/null | wc -l);'
    ' cp "$ACMELITE_CERT_DIR/fullchain.pem" "$ACMELITE_CERT_DIR/../deployed-$n.pem";'
    " echo deployed; echo 'rollout restarted' >&2"
)
#: Fails while a file named "break" sits beside the output directory.
FRAGILE_HOOK = (
    'if [ -e "$ACMELITE_CERT_DIR/../break" ]; then'
    " echo 'error: deployments.apps \"web\" is forbidden' >&2; exit 4; fi;"
    ' touch "$ACMELITE_CERT_DIR/../deployed"'
)


def test_issue_runs_the_hook_with_its_environment(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "hook.deploy.test", "www.hook.deploy.test")
    result = run_cli([*argv, "--deploy-hook", RECORDING_HOOK, "--json"], capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    # the hook also inherits the ACMELITE_* variables of this process (ACMELITE_PEBBLE_BIN)
    inherited = {f"{k}={v}" for k, v in os.environ.items() if k.startswith("ACMELITE_")}
    hook_env = (tmp_path / "hook.env").read_text().splitlines()
    assert [line for line in hook_env if line not in inherited] == [
        f"ACMELITE_CERT_DIR={out}",
        "ACMELITE_NAMES=hook.deploy.test www.hook.deploy.test",
    ]
    # The hook ran once the new files were in place.
    assert (tmp_path / "deployed-0.pem").read_bytes() == (out / "fullchain.pem").read_bytes()
    # Its output goes to stderr; stdout stays the JSON summary.
    assert json.loads(result.out)["names"] == ["hook.deploy.test", "www.hook.deploy.test"]
    assert "hook: deployed" in result.err and "hook: rollout restarted" in result.err
    assert json.loads((out / "renewal.json").read_text())["deploy_hook"] == RECORDING_HOOK


def test_failing_hook_after_issue_keeps_the_files(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "break").touch()
    argv = issue_argv(pebble, tmp_path, "fail.deploy.test")
    result = run_cli([*argv, "--deploy-hook", FRAGILE_HOOK], capsys)
    assert result.code == 1
    out = tmp_path / "out"
    assert result.err.splitlines()[-1] == (
        f"acmelite: error: the certificate is installed in {out}, but deploy hook exited with"
        ' status 4: error: deployments.apps "web" is forbidden; the hook runs again on the next'
        " renewal"
    )
    # The failure is remembered: the next renew runs the hook again (and again, until it works).
    assert json.loads((out / STATE_FILE).read_text())["deploy_pending"] is True
    code, (decision,), err = renew(capsys, str(out))
    assert code == 1 and decision["status"] == "failed", err
    assert "the deploy hook failed again" in decision["reason"]
    (tmp_path / "break").unlink()
    code, (decision,), err = renew(capsys, str(out))
    assert code == 0 and decision["status"] == "not-due", err
    assert json.loads((out / STATE_FILE).read_text())["deploy_pending"] is False
    verify_chain((out / "fullchain.pem").read_bytes(), pebble.roots(), "fail.deploy.test")
    assert json.loads((out / "renewal.json").read_text())["deploy_hook"] == FRAGILE_HOOK


def test_renew_runs_the_hook(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "renew.deploy.test", "--deploy-hook", RECORDING_HOOK)
    window_in_the_past(pebble, out)
    code, (decision,), err = renew(capsys, str(out))
    assert code == 3, err
    assert decision["status"] == "renewed"
    assert (tmp_path / "deployed-1.pem").read_bytes() == (out / "fullchain.pem").read_bytes()
    assert (tmp_path / "deployed-1.pem").read_bytes() != (tmp_path / "deployed-0.pem").read_bytes()
    assert "ACMELITE_NAMES=renew.deploy.test" in (tmp_path / "hook.env").read_text()


def test_failing_hook_after_renew_is_retried(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "retry.deploy.test", "--deploy-hook", FRAGILE_HOOK)
    (tmp_path / "deployed").unlink()
    old_cert = (out / "cert.pem").read_bytes()
    (tmp_path / "break").touch()
    code, (decision,), _ = renew(capsys, str(out), "--force")
    assert code == 1
    assert decision["status"] == "failed"
    reason = str(decision["reason"])
    assert "new certificate valid until" in reason and "is forbidden" in reason
    # The renewal itself stands: the new certificate serves.
    assert (out / "cert.pem").read_bytes() != old_cert
    assert json.loads((out / STATE_FILE).read_text())["deploy_pending"] is True

    code, (again,), _ = renew(capsys, str(out))
    assert code == 1
    assert str(again["reason"]).startswith("the deploy hook failed again: ")

    (tmp_path / "break").unlink()
    code, (fixed,), err = renew(capsys, str(out))
    assert code == 0, err
    assert fixed["status"] == "not-due"
    assert (tmp_path / "deployed").exists()
    assert json.loads((out / STATE_FILE).read_text())["deploy_pending"] is False


def _secret(out: Path) -> dict[str, object]:
    path = out / "secret.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    manifest = json.loads(path.read_text())
    assert isinstance(manifest, dict)
    return manifest


def test_kubernetes_secret_from_issue_and_renew(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "k8s.deploy.test", "--k8s-secret", "web-tls/istio-system")
    manifest = _secret(out)
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Secret"
    assert manifest["type"] == "kubernetes.io/tls"
    metadata = manifest["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["name"] == "web-tls" and metadata["namespace"] == "istio-system"
    data = manifest["data"]
    assert isinstance(data, dict) and sorted(data) == ["tls.crt", "tls.key"]
    tls_crt, tls_key = base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
    assert tls_crt == (out / "fullchain.pem").read_bytes()
    assert tls_key == (out / "privkey.pem").read_bytes()
    leaf = verify_chain(tls_crt, pebble.roots(), "k8s.deploy.test")
    assert key_matches_cert(tls_key, tls_crt)
    assert metadata["annotations"] == {
        "acmelite/serial": format(leaf.serial_number, "x"),
        "acmelite/not-after": leaf.not_valid_after_utc.isoformat(),
    }

    code, _, err = renew(capsys, str(out), "--force")
    assert code == 3, err
    renewed = _secret(out)["data"]
    assert isinstance(renewed, dict)
    new_crt = base64.b64decode(renewed["tls.crt"])
    assert new_crt == (out / "fullchain.pem").read_bytes()
    assert x509.load_pem_x509_certificate(new_crt).serial_number != leaf.serial_number
    assert key_matches_cert(base64.b64decode(renewed["tls.key"]), new_crt)


def test_secret_is_yaml_too(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = pytest.importorskip("yaml")
    out = issue(pebble, tmp_path, capsys, "yaml.deploy.test", "--k8s-secret", "web-tls")
    text = (out / "secret.yaml").read_text()
    assert yaml.safe_load(text) == json.loads(text)
    assert "namespace" not in json.loads(text)["metadata"]


@pytest.mark.parametrize("value", ["Web_TLS", "web/Istio-System", "web/", "a/b/c"])
def test_bad_secret_name_is_a_usage_error(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    argv = issue_argv(pebble, tmp_path, "bad.deploy.test")
    result = run_cli([*argv, f"--k8s-secret={value}"], capsys)
    assert result.code == 2
    assert "--k8s-secret" in result.err and "lowercase" in result.err
    assert not (tmp_path / "out").exists()


def test_secret_matches_what_kubectl_makes(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kubectl create secret tls --dry-run=client`` (no cluster needed) builds the same data."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = issue(pebble, tmp_path, capsys, "kubectl.deploy.test", "--k8s-secret", "web-tls/edge")
    made = subprocess.run(
        [kubectl, "create", "secret", "tls", "web-tls", "--namespace", "edge",
         "--cert", str(out / "fullchain.pem"), "--key", str(out / "privkey.pem"),
         "--dry-run=client", "--output", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    theirs = json.loads(made.stdout)
    ours = _secret(out)
    assert ours["data"] == theirs["data"]
    assert (ours["apiVersion"], ours["kind"], ours["type"]) == (
        theirs["apiVersion"], theirs["kind"], theirs["type"]
    )  # fmt: skip
    metadata = ours["metadata"]
    assert isinstance(metadata, dict)
    assert (metadata["name"], metadata["namespace"]) == (
        theirs["metadata"]["name"], theirs["metadata"]["namespace"]
    )  # fmt: skip
