"""verify: the online check, msal's real code path against a local fake Azure AD over HTTPS
(through `check --online` and `set --verify`, and called directly)."""

import json
import logging
import socket
import time

import pytest
import requests
import trustme

from onedesk_azuread import verify

from .conftest import CLIENT_ID, SECRET, SECRET_ID, TENANT, closed_port_url
from .fake_azure import SilentServer


def online(run, host, *extra, tenant=TENANT):
    result = run("check", "--json", "--online", "--tenant", tenant, "--authority-host", host,
                 *extra)
    assert SECRET not in result.stdout + result.stderr
    return result, json.loads(result.stdout)


def test_a_valid_pair_gets_a_token(run, azure, configured, caplog):
    caplog.set_level(logging.DEBUG)
    result, report = online(run, azure.url)
    assert result.exit_code == 0, report
    assert report["online"]["status"] == "valid"
    assert report["ok"] is True
    method, path, form, matched = azure.seen[-1]
    assert (method, path) == ("POST", f"/{TENANT}/oauth2/v2.0/token")
    assert matched  # msal sent exactly our secret
    assert form["client_id"] == CLIENT_ID
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https://graph.microsoft.com/.default"
    assert SECRET not in caplog.text


@pytest.mark.parametrize("code, words", [
    (7000215, "the Secret ID was copied instead of the Secret Value"),
    (7000222, "has expired"),
    (700016, f"no app with client ID {CLIENT_ID} in tenant {TENANT}"),
    (90002, f"tenant {TENANT} was not found"),
    (7000112, "the app is disabled"),
    (7000229, f"az ad sp create --id {CLIENT_ID}"),
    (53003, "Access has been blocked by Conditional Access policies"),
])
def test_azure_refusals_in_plain_language(run, azure, configured, code, words):
    azure.token = code
    result, report = online(run, azure.url)
    assert result.exit_code == 1
    verdict = report["online"]
    assert (verdict["status"], verdict["code"]) == ("invalid", code)
    assert words in verdict["message"]
    assert verdict["correlation_id"]  # for support requests
    assert "Trace ID" not in verdict["message"]
    text = run("check", "--online", "--tenant", TENANT, "--authority-host", azure.url)
    assert text.exit_code == 1
    assert f"online: invalid: {words}" in text.stderr or words in text.stderr
    assert "(correlation id " in text.stderr
    assert SECRET not in text.stdout + text.stderr


def test_tenant_not_found_during_discovery(run, azure, configured):
    result, report = online(run, azure.url, tenant="missing.example.com")
    assert result.exit_code == 1
    assert report["online"]["code"] == 90002
    assert "tenant missing.example.com was not found" in report["online"]["message"]
    assert [m for m, *_ in azure.seen] == ["GET"]  # no token request was made


@pytest.mark.parametrize("where", ["token", "discovery"])
def test_http_5xx_could_not_verify(run, azure, configured, where):
    if where == "token":
        azure.token = 500
    else:
        azure.discovery_status = 503
    result, report = online(run, azure.url)
    assert result.exit_code == 3
    assert report["online"]["status"] == "unverified"
    assert "could not verify" in report["online"]["message"]


def test_a_server_that_never_answers_is_bounded_by_the_timeout(run, azure, configured):
    silent = SilentServer()
    try:
        start = time.monotonic()
        result, report = online(run, silent.url, "--timeout", "1.5")
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert result.exit_code == 3
    assert "did not answer" in report["online"]["message"]
    assert 1.4 <= elapsed <= 1.5 + 1.0, elapsed  # one attempt, no retry doubling the wait


def test_connection_refused(run, azure, configured):
    result, report = online(run, closed_port_url())
    assert result.exit_code == 3
    assert "cannot connect" in report["online"]["message"]
    assert "refused" in report["online"]["message"].lower()


def test_an_untrusted_certificate_is_never_accepted(run, azure, configured, monkeypatch,
                                                    tmp_path):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    result, report = online(run, azure.url)
    assert result.exit_code == 3
    assert "TLS failure" in report["online"]["message"]
    assert not [m for m, *_ in azure.seen if m == "POST"]  # the secret was never sent


def test_ssl_cert_file_is_honoured_like_other_tls_clients(run, azure, configured, monkeypatch,
                                                           ca, tmp_path):
    bundle = tmp_path / "ca-via-ssl-cert-file.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    result, _ = online(run, azure.url)
    assert result.exit_code == 0


@pytest.mark.parametrize("tenant", ["common", "organizations", "Consumers"])
def test_multi_tenant_aliases_are_refused_with_a_reason(run, configured, tenant):
    result = run("check", "--online", "--tenant", tenant)
    assert result.exit_code == 2
    assert "cannot verify a secret" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["--online"], "needs --tenant"),
    (["--tenant", TENANT], "go with --online"),
    (["--online", "--tenant", TENANT, "--authority-host", "http://127.0.0.1:1"], "https"),
    (["--online", "--tenant", "not a tenant"], "neither a tenant ID"),
])
def test_online_usage_errors(run, configured, args, words):
    result = run("check", *args)
    assert result.exit_code == 2
    assert words in result.stderr


def test_offline_errors_skip_the_network(run, azure, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    result, report = online(run, azure.url)
    assert result.exit_code == 1
    assert report["online"]["status"] == "skipped"
    assert azure.seen == []


def test_set_verify_writes_only_a_proven_pair(run, azure, settings_path):
    args = ("set", "--client-id", CLIENT_ID, "--secret-stdin", "--verify", "--tenant", TENANT,
            "--authority-host", azure.url)
    azure.token = 7000215
    refused = run(*args, input=SECRET)
    assert refused.exit_code == 1
    assert "Secret ID was copied" in refused.stderr
    assert not settings_path.exists()
    azure.token = "ok"
    written = run(*args, input=SECRET)
    assert written.exit_code == 0, written.stderr
    assert "online: valid" in written.stderr
    assert SECRET in settings_path.read_text()
    assert SECRET not in written.stderr + written.stdout


def test_set_verify_that_cannot_run_refuses_unless_forced(run, azure, settings_path):
    url = closed_port_url()
    args = ("set", "--client-id", CLIENT_ID, "--secret-stdin", "--verify", "--tenant", TENANT,
            "--authority-host", url)
    refused = run(*args, input=SECRET)
    assert refused.exit_code == 3
    assert "could not verify" in refused.stderr
    assert not settings_path.exists()
    forced = run(*args, "--force", input=SECRET)
    assert forced.exit_code == 0
    assert "online: unverified" in forced.stderr
    assert settings_path.exists()


def test_sovereign_clouds_pick_their_hosts():
    assert verify.CLOUDS["usgov"][0] == "https://login.microsoftonline.us"
    assert verify.CLOUDS["china"][0] == "https://login.chinacloudapi.cn"


def test_the_network_guard_refuses_outside_addresses(monkeypatch):
    from . import conftest

    def would_connect(sock, address):
        raise AssertionError("the guard let a connection through")

    monkeypatch.setattr(conftest, "_real_connect", would_connect)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="off limits"):
        sock.connect(("192.0.2.1", 443))
    with pytest.raises(socket.gaierror, match="off limits"):
        socket.getaddrinfo("login.microsoftonline.com", 443)
    assert len(conftest._outside_attempts) == 2
    del conftest._outside_attempts[:]


def test_https_proxy_is_honoured(run, azure, configured, monkeypatch):
    proxy = closed_port_url().replace("https://", "http://")
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "")
    result, report = online(run, azure.url)
    assert result.exit_code == 3
    assert "proxy" in report["online"]["message"]
    assert azure.seen == []  # nothing went around the proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    result, report = online(run, azure.url)
    assert result.exit_code == 0, report


# --- TLS verification is never off

@pytest.mark.parametrize("empty", [("CURL_CA_BUNDLE",), ("REQUESTS_CA_BUNDLE",),
                                   ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")])
def test_an_empty_ca_bundle_variable_never_turns_verification_off(run, azure, configured,
                                                                   monkeypatch, empty):
    """requests 2.25.1 (EL 9) reads an empty CURL_CA_BUNDLE as verify='' and skips the check.

    The fake authority's CA is in no bundle but the one the fixture named; with that
    unset and the variable(s) empty, its certificate must be refused.
    """
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    for name in empty:
        monkeypatch.setenv(name, "")
    result, report = online(run, azure.url)
    assert result.exit_code == 3, report
    assert "TLS failure" in report["online"]["message"]
    assert not [m for m, *_ in azure.seen if m == "POST"]  # the secret was never sent


def test_an_empty_variable_falls_through_to_the_next_bundle(run, azure, configured, monkeypatch,
                                                            ca, tmp_path):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    result, report = online(run, azure.url)
    assert result.exit_code == 0, report


def test_the_ca_bundle_is_always_a_path(monkeypatch):
    for name in verify.CA_BUNDLE_VARIABLES:
        monkeypatch.setenv(name, "")
    assert verify.ca_bundle(requests) == requests.certs.where()
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/pki/tls/certs/ca-bundle.crt")
    assert verify.ca_bundle(requests) == "/etc/pki/tls/certs/ca-bundle.crt"
