"""Online verification: ask Azure AD for a client-credentials token. The only network code.

msal and requests are imported inside ``verify`` so that no other path (show,
offline check, the daily timer's offline check, the dnf plugin) pays for them (90 to 150
ms) or can reach the network.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import NamedTuple
from urllib.parse import urlsplit  # cheap: no ipaddress, no socket

from .validation import GUID

VALID = "valid"
INVALID = "invalid"
UNVERIFIED = "unverified"
SKIPPED = "skipped"  # not asked: the offline check found errors, which come first

EXIT_CODES = {VALID: 0, INVALID: 1, UNVERIFIED: 3, SKIPPED: 1}
NOT_ASKED = "not asked: fix the errors above first"

# cloud -> (login host, Microsoft Graph resource)
CLOUDS = {
    "public": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}
DEFAULT_TIMEOUT = 10.0
# Tenants that name no directory: a secret can only be checked against one.
MULTI_TENANT_ALIASES = ("common", "organizations", "consumers")
_DOMAIN = re.compile(
    r"(?=.{4,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_AADSTS = re.compile(r"AADSTS(\d+)")


class Authority(NamedTuple):
    """Whom to ask for a token, and for how long."""

    tenant: str  # a tenant ID or domain (check_tenant)
    cloud: str = "public"  # a key of CLOUDS
    authority_host: str | None = None  # instead of the cloud's (check_authority_host)
    timeout: float = DEFAULT_TIMEOUT  # seconds, for the whole request

    @property
    def host(self) -> str:
        return self.authority_host or CLOUDS[self.cloud][0]

    @property
    def scope(self) -> str:
        return CLOUDS[self.cloud][1] + "/.default"


class Result(NamedTuple):
    """Azure AD's answer, in plain language."""

    status: str  # VALID, INVALID, UNVERIFIED or SKIPPED
    message: str  # plain language, with the fix; never the secret
    code: int | None = None  # the AADSTS code, when Azure gave one
    correlation_id: str | None = None  # for support requests

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict:
        return {"status": self.status, "code": self.code, "message": self.message,
                "correlation_id": self.correlation_id}


def check_tenant(tenant: str) -> str:
    """The tenant as given, or ValueError saying why it cannot verify a secret."""
    tenant = tenant.strip()
    if tenant.lower() in MULTI_TENANT_ALIASES:
        raise ValueError(f"'{tenant}' names no directory, so it cannot verify a secret; give the "
                         "tenant ID (a GUID) or a verified domain of the tenant the app lives in")
    if not (GUID.fullmatch(tenant) or _DOMAIN.fullmatch(tenant)):
        raise ValueError(f"'{tenant}' is neither a tenant ID (GUID) nor a domain name")
    return tenant


def check_authority_host(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL with a host (msal refuses plain http)")
    return url.strip().rstrip("/")


def explain(code: int, client_id: str, tenant: str, description: str) -> str:
    """Azure AD's error code in plain language, with the fix."""
    known = {
        7000215: "the client secret is wrong. The most common cause: the Secret ID was copied "
                 "instead of the Secret Value. Create a new client secret in Azure, copy its "
                 "Value, then run: onedesk-azuread set --secret-prompt",
        7000222: "the client secret has expired. Create a new one in Azure (Certificates & "
                 "secrets), then run: onedesk-azuread set --secret-prompt --expires YYYY-MM-DD",
        700016: f"there is no app with client ID {client_id} in tenant {tenant}: the client ID "
                "or the tenant is wrong",
        90002: f"tenant {tenant} was not found: check the tenant ID or domain, and --cloud",
        7000112: "the app is disabled in Azure AD; an administrator must enable it "
                 "(Enterprise applications > Properties > Enabled for users to sign-in)",
        7000229: f"the app has no service principal in tenant {tenant}. Create it with: "
                 f"az ad sp create --id {client_id}",
    }
    if code in known:
        return f"{known[code]} (AADSTS{code})"
    # Azure appends "Trace ID: ... Correlation ID: ... Timestamp: ..." (on new lines).
    first_line = re.split(r"\s*Trace ID:", description.strip())[0].strip()
    first_line = first_line.splitlines()[0] if first_line else ""
    return f"Azure AD refused the credentials: {first_line or f'AADSTS{code}'}"


def _codes_in(*texts: str) -> int | None:
    for text in texts:
        found = _AADSTS.search(text or "")
        if found:
            return int(found.group(1))
    return None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def ca_bundle(requests) -> str:
    """The CA bundle to verify Azure AD's certificate with: a path, never True, '' or False.

    The first of REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE (requests' own order) and
    SSL_CERT_FILE (what other TLS clients honour) that is set and not empty;
    else the bundle requests ships with (certifi's, or the system's on EL).
    """
    for name in CA_BUNDLE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return requests.certs.where()


def _session_class(requests):
    class DeadlineSession(requests.Session):
        """One attempt per request, each bounded by what is left of the overall deadline.

        msal's own client retries and takes a per-call timeout; with our session
        it does neither, so the total time stays within --timeout.
        """

        def __init__(self, deadline: float):
            super().__init__()
            self.deadline = deadline
            self.last_status: int | None = None
            self.ca_bundle = ca_bundle(requests)

        def request(self, method, url, **kwargs):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise requests.exceptions.Timeout("the deadline passed")
            kwargs["timeout"] = remaining
            # A path, on every request: requests consults the environment only when verify
            # is True or None, and requests < 2.28 turns an empty CURL_CA_BUNDLE or
            # REQUESTS_CA_BUNDLE into verify='' (off; psf/requests#6071).
            kwargs["verify"] = self.ca_bundle
            response = super().request(method, url, **kwargs)
            self.last_status = response.status_code
            return response

    return DeadlineSession


def _ask(client_id: str, secret: str, authority: Authority, deadline: float) -> Result:
    try:
        import msal
        import requests
    except ImportError as exc:
        return Result(UNVERIFIED, f"could not verify: {exc.name} is not installed")
    session = _session_class(requests)(deadline)
    tenant, host = authority.tenant, urlsplit(authority.host).netloc
    try:
        app = msal.ConfidentialClientApplication(
            client_id, client_credential=secret, authority=f"{authority.host}/{tenant}",
            http_client=session, instance_discovery=False)
        answer = app.acquire_token_for_client(scopes=[authority.scope])
    except requests.exceptions.RequestException as exc:
        return Result(UNVERIFIED, f"could not verify: {_network_failure(requests, exc, host)}")
    except (ValueError, RuntimeError) as exc:
        # msal raises ValueError when discovery is refused (an unknown tenant: AADSTS90002).
        code = _codes_in(*(str(e) for e in _chain(exc)))
        if code is not None:
            return Result(INVALID, explain(code, client_id, tenant, ""), code)
        status = session.last_status
        if status is not None and status >= 500:
            return Result(UNVERIFIED, f"could not verify: {host} answered HTTP {status}")
        return Result(UNVERIFIED, f"could not verify: unexpected answer from {host}")
    return _from_answer(answer, session.last_status, client_id, tenant, host)


def _network_failure(requests, exc: Exception, host: str) -> str:
    errors = requests.exceptions
    if isinstance(exc, errors.Timeout):
        return f"{host} did not answer in time"
    if isinstance(exc, errors.ProxyError):
        return f"the proxy failed: {_first_line(exc)}"
    if isinstance(exc, errors.SSLError):
        return f"TLS failure with {host}: {_tls_reason(exc)}"
    if isinstance(exc, errors.ConnectionError):
        return f"cannot connect to {host}: {_connection_reason(exc)}"
    return f"{host} failed: {_first_line(exc)}"  # HTTP 5xx during discovery, ...


def _from_answer(answer: dict, status: int | None, client_id: str, tenant: str,
                 host: str) -> Result:
    """msal's answer to the token request, in plain language."""
    correlation = answer.get("correlation_id")
    if "access_token" in answer:
        return Result(VALID, f"Azure AD issued a token for client ID {client_id} in tenant "
                             f"{tenant}: the client ID and secret are correct",
                      correlation_id=correlation)
    if status is not None and status >= 500:
        return Result(UNVERIFIED, f"could not verify: {host} answered HTTP {status}",
                      correlation_id=correlation)
    description = str(answer.get("error_description") or "")
    codes = answer.get("error_codes") or []
    code = codes[0] if codes else _codes_in(description)
    if code is None:
        error = answer.get("error") or "unknown error"
        return Result(INVALID, f"Azure AD refused the credentials: {error}",
                      correlation_id=correlation)
    return Result(INVALID, explain(int(code), client_id, tenant, description), int(code),
                  correlation)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tls_reason(exc: BaseException) -> str:
    for cause in _chain(exc):
        reason = getattr(cause, "reason", None) or getattr(cause, "verify_message", None)
        if isinstance(reason, str) and reason:
            return reason
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the server's certificate is not trusted (set REQUESTS_CA_BUNDLE to your CA)"
    return _first_line(exc)


def _connection_reason(exc: BaseException) -> str:
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return found.group(1) if found else _first_line(exc)


def verify(client_id: str, secret: str, authority: Authority) -> Result:
    """Ask Azure AD for a token with this client ID and secret; at most its timeout.

    The work runs in a daemon thread joined with a deadline, so even a server
    that trickles bytes cannot hold the caller past ``timeout`` plus a margin.
    """
    timeout = authority.timeout
    deadline = time.monotonic() + timeout
    outcome = []

    def work():
        try:
            outcome.append(_ask(client_id, secret, authority, deadline))
        except Exception as exc:  # noqa: BLE001 - reported as "could not verify", never raised
            outcome.append(Result(UNVERIFIED, f"could not verify: {type(exc).__name__}"))

    worker = threading.Thread(target=work, name="onedesk-azuread-verify", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return Result(UNVERIFIED, f"could not verify: {urlsplit(authority.host).netloc} did "
                                  f"not answer within {timeout:g} s")
    result = outcome[0]
    if secret and secret in result.message:  # never, but a secret must not leak if it did
        result = result._replace(message=result.message.replace(secret, "…"))
    return result
