"""What the administrator registers in Azure for one OneDesk server. Pure data."""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlsplit

from . import azcli

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SIGN_IN_AUDIENCE = "AzureADMultipleOrgs"
REDIRECT_PATHS = (
    "/integrations/office365/oauth2redirectWithAuthCode",
    "/integrations/azuread/token",
)
# Microsoft Graph delegated permissions the vendor's article lists, with their ids.
DELEGATED_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("Directory.Read.All", "06da0dbc-49e2-44d2-8312-53f166ab848a"),
    ("email", "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"),
    ("Group.Read.All", "5f8c59db-677d-491f-a6b8-5f174b11ec1d"),
    ("IMAP.AccessAsUser.All", "652390e4-393a-48de-9484-05f9b1212954"),
    ("offline_access", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),
    ("openid", "37f7f235-527c-4136-accd-4a02d197296e"),
    ("People.Read", "ba47897c-39ec-4d83-8086-ee8256fa737d"),
    ("profile", "14dad69e-099b-42c9-810b-d002981feec1"),
    ("SMTP.Send", "258f6531-6087-4cc4-bb90-092c5fb3ed3f"),
    ("User.Read", "e1fe6dd8-ba31-4d61-89e7-88639da4683d"),
    ("User.ReadBasic.All", "b340eb25-3456-403f-be2f-af7a0d370277"),
)
OPTIONAL_CLAIMS = {"idToken": [{"name": "email", "essential": False}]}
SECRET_LIFETIME_YEARS = 2  # the portal's longest


def server_url(url: str) -> str:
    """``https://HOST[:PORT]`` from the user's URL; ValueError with the reason otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https":
        raise ValueError("must start with https:// (Azure accepts only https redirect URIs)")
    if not parts.hostname:
        raise ValueError("has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only the server's address, without a path")
    if parts.username or parts.password:
        raise ValueError("must not hold a user name or password")
    return f"https://{parts.netloc}"


def redirect_uris(base: str) -> list[str]:
    return [base + path for path in REDIRECT_PATHS]


def required_resource_access() -> list[dict[str, object]]:
    return [{
        "resourceAppId": GRAPH_APP_ID,
        "resourceAccess": [{"id": pid, "type": "Scope"} for _, pid in DELEGATED_PERMISSIONS],
    }]


def display_name(base: str) -> str:
    return f"OneDesk ({urlsplit(base).hostname})"


def manifest(base: str) -> dict[str, object]:
    """The registration as Microsoft Graph application properties (stable JSON)."""
    return {
        "displayName": display_name(base),
        "signInAudience": SIGN_IN_AUDIENCE,
        "web": {"redirectUris": redirect_uris(base)},
        "requiredResourceAccess": required_resource_access(),
        "optionalClaims": OPTIONAL_CLAIMS,
    }


def portal_steps(base: str) -> str:
    width = max(len(name) for name, _ in DELEGATED_PERMISSIONS)
    permissions = "\n".join(f"      {name:<{width}}  {pid}" for name, pid in DELEGATED_PERMISSIONS)
    uris = "\n".join(f"      {uri}" for uri in redirect_uris(base))
    return f"""\
Azure portal > Microsoft Entra ID > App registrations > New registration:
  Name:                     {display_name(base)}
  Supported account types:  Accounts in any organizational directory (multitenant)
  Redirect URIs, platform Web:
{uris}
  API permissions > Add a permission > Microsoft Graph > Delegated permissions:
{permissions}
  Token configuration > Add optional claim > ID > email
  Certificates & secrets > New client secret, longest expiry ({SECRET_LIFETIME_YEARS} years);
      copy its Value (not its Secret ID) at once: Azure shows it only once.
Then store the pair on this server (the secret is read without echo):
  onedesk-azuread set --client-id <Application (client) ID> --secret-prompt --expires <YYYY-MM-DD>
"""


def az_commands(base: str) -> str:
    """A shell script of Azure CLI commands that registers the app and stores the pair.

    The new secret goes from `az` straight into `onedesk-azuread set
    --secret-stdin`, so it is never shown or put on a command line.
    """
    permissions = json.dumps(required_resource_access(), indent=2)
    claims = json.dumps(OPTIONAL_CLAIMS)
    uris = " ".join(shlex.quote(uri) for uri in redirect_uris(base))
    # The secret is named as rotate names its own; $HOST, $APP_ID and $END are the script's.
    name = azcli.Shell(f'"{azcli.DISPLAY_PREFIX} ${{HOST:-localhost}} $(date +%Y-%m-%d)"')
    reset = azcli.shell_line(
        ["az", *azcli.reset_args(azcli.Shell('"$APP_ID"'), name, end_date=azcli.Shell('"$END"'),
                                 password_only=True)],
        breaks=("--display-name", "--end-date"))
    return f"""\
#!/bin/sh
# Register the OneDesk app in Azure AD and store its credentials on this server.
# Run as root after `az login` (an account allowed to register applications).
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/permissions.json" <<'EOF'
{permissions}
EOF
cat > "$tmp/claims.json" <<'EOF'
{claims}
EOF
APP_ID=$(az ad app create --display-name {shlex.quote(display_name(base))} \\
  --sign-in-audience {SIGN_IN_AUDIENCE} \\
  --web-redirect-uris {uris} \\
  --required-resource-accesses @"$tmp/permissions.json" \\
  --optional-claims @"$tmp/claims.json" \\
  --query appId --output tsv)
az ad sp create --id "$APP_ID" >/dev/null
# az ends the secret at 00:00 UTC of --end-date: END is the first day it no longer works,
# LAST the last day it does (the expiry onedesk-azuread records and warns of).
END=$(date -u -d '+{SECRET_LIFETIME_YEARS} years' +%Y-%m-%d)
LAST=$(date -u -d "$END -1 day" +%Y-%m-%d)
# Named after this server, as `onedesk-azuread rotate` names its secrets: in a fleet sharing
# the app, whose secret is whose.
HOST=$(printf %s "$(uname -n)" | tr -c 'A-Za-z0-9.-' '-' | sed 's/^-*//; s/-*$//')
# --append keeps any secret the app already has (without it az deletes them all).
{reset} |
  onedesk-azuread set --client-id "$APP_ID" --secret-stdin --expires "$LAST"
"""
