"""registration: the app registration OneDesk needs, as portal steps, az commands and JSON."""

import json

import pytest

from onedesk_azuread import registration


@pytest.mark.parametrize("url, server", [
    ("https://helpdesk.example.com", "https://helpdesk.example.com"),
    (" https://helpdesk.example.com:8443/ ", "https://helpdesk.example.com:8443"),
])
def test_server_url_keeps_only_the_address(url, server):
    assert registration.server_url(url) == server


@pytest.mark.parametrize("url, reason", [
    ("http://helpdesk.example.com", "must start with https://"),
    ("https://", "has no host name"),
    ("https://helpdesk.example.com/onedesk", "without a path"),
    ("https://user:pw@helpdesk.example.com", "user name or password"),
])
def test_server_url_refuses_with_the_reason(url, reason):
    with pytest.raises(ValueError, match=reason):
        registration.server_url(url)


def test_the_manifest_names_the_server_its_redirects_and_graph_s_delegated_scopes():
    manifest = registration.manifest("https://helpdesk.example.com")
    assert manifest["displayName"] == "OneDesk (helpdesk.example.com)"
    assert manifest["signInAudience"] == "AzureADMultipleOrgs"
    assert manifest["web"]["redirectUris"] == [
        "https://helpdesk.example.com/integrations/office365/oauth2redirectWithAuthCode",
        "https://helpdesk.example.com/integrations/azuread/token"]
    access = manifest["requiredResourceAccess"]
    assert [a["resourceAppId"] for a in access] == ["00000003-0000-0000-c000-000000000000"]
    scopes = access[0]["resourceAccess"]
    assert {s["type"] for s in scopes} == {"Scope"}
    assert len(scopes) == len(registration.DELEGATED_PERMISSIONS)
    json.dumps(manifest)  # Graph's JSON, as `register --json` prints it


def test_the_az_script_never_puts_the_secret_on_a_command_line():
    script = registration.az_commands("https://helpdesk.example.com")
    assert script.startswith("#!/bin/sh\n") and "set -eu" in script
    assert "--append" in script  # keeps the secrets the app already has
    assert "onedesk-azuread set --client-id \"$APP_ID\" --secret-stdin" in script
    assert "--secret-prompt" not in script
