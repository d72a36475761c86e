"""A local stand-in for Azure AD's login host: OpenID discovery and the v2.0 token endpoint.

HTTPS on 127.0.0.1 with a certificate from trustme, threads, and Azure's real
response shapes (error, error_description starting AADSTS<code>:, error_codes,
timestamp, trace_id, correlation_id, error_uri) with the HTTP statuses Azure
uses, so that msal's real code path runs end to end.
"""

import json
import socket
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

# code -> (HTTP status, OAuth error, description as Azure words it)
AZURE_ERRORS = {
    7000215: (401, "invalid_client",
              "Invalid client secret provided. Ensure the secret being sent in the request is the "
              "client secret value, not the client secret ID, for a secret added to app '{app}'."),
    7000222: (401, "invalid_client",
              "The provided client secret keys for app '{app}' are expired. Visit the Azure portal "
              "to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
              "certificate credentials for added security: https://aka.ms/certCreds."),
    700016: (400, "unauthorized_client",
             "Application with identifier '{app}' was not found in the directory '{tenant}'. This "
             "can happen if the application has not been installed by the administrator of the "
             "tenant or consented to by any user in the tenant. You may have sent your "
             "authentication request to the wrong tenant."),
    90002: (400, "invalid_tenant",
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant."),
    7000112: (400, "unauthorized_client", "Application '{app}'(OneDesk) is disabled."),
    7000229: (400, "invalid_client",
              "The client application {app} is missing service principal in the tenant "
              "{tenant}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"),
    53003: (400, "invalid_grant", "Access has been blocked by Conditional Access policies. The "
                                  "access policy does not allow token issuance."),
}


def error_body(code, app="", tenant=""):
    status, error, text = AZURE_ERRORS[code]
    correlation, trace = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = "2026-11-26 12:00:00Z"
    description = (f"AADSTS{code}: {text.format(app=app, tenant=tenant)}\r\nTrace ID: {trace}\r\n"
                   f"Correlation ID: {correlation}\r\nTimestamp: {stamp}")
    return status, {"error": error, "error_description": description, "error_codes": [code],
                    "timestamp": stamp, "trace_id": trace, "correlation_id": correlation,
                    "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


class FakeAzure:
    """Configure ``token`` (an AADSTS code, "ok", or an HTTP status like 500) before each call.

    With ``az_state`` (the path of tests/fake_az.py's state file), "ok" means what Azure AD
    does: a token only for a secret the app holds there, once it has propagated (the
    state's delay) and until it is deleted or expires; otherwise AADSTS7000215.
    """

    def __init__(self, ca, secret):
        self.secret = secret
        self.token = "ok"
        self.az_state = None
        self.discovery_status = 200
        self.missing_tenants = set()
        self.seen = []  # (method, path, form without the secret, secret matched)
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the test output stays clean
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.seen.append(("GET", self.path, None, None))
                parts = self.path.strip("/").split("/")
                tenant = parts[0]
                if parts[1:] != ["v2.0", ".well-known", "openid-configuration"]:
                    return self._send(404, {"error": "not_found"})
                if fake.discovery_status != 200:
                    return self._send(fake.discovery_status, {"error": "server_error"})
                if tenant in fake.missing_tenants:
                    return self._send(*error_body(90002, tenant=tenant))
                base = f"{fake.url}/{tenant}"
                return self._send(200, {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{fake.url}/{tenant}/v2.0",
                    "jwks_uri": f"{fake.url}/{tenant}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                              "private_key_jwt",
                                                              "client_secret_basic"],
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                secret = form.pop("client_secret", None)
                matched = secret == fake.secret
                fake.seen.append(("POST", self.path, form, matched))
                tenant = self.path.strip("/").split("/")[0]
                if fake.token == "ok" and fake.az_state is not None:
                    from .fake_az import accepted

                    if not accepted(fake.az_state, form.get("client_id"), secret):
                        return self._send(*error_body(7000215, app=form.get("client_id", ""),
                                                      tenant=tenant))
                if fake.token == "ok":
                    return self._send(200, {"token_type": "Bearer", "expires_in": 3599,
                                            "ext_expires_in": 3599,
                                            "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0."
                                                            "eyJyb2xlcyI6W119."})
                if fake.token not in AZURE_ERRORS:  # an HTTP failure status, e.g. 500
                    data = b"<html><body>Service Unavailable</body></html>"
                    self.send_response(fake.token)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                return self._send(*error_body(fake.token, app=form.get("client_id", ""),
                                              tenant=tenant))

        return Handler


class SilentServer:
    """Accepts TCP connections and never answers: the hung-server case."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.held = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()
