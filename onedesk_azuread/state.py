"""The tool's own state under /var/lib/onedesk-azuread: the recorded secret expiry.

Nothing here stores a secret. A record names the secret it belongs to by a
salted HMAC, so an expiry recorded for an old secret never applies to a new one.
"""

import hashlib
import hmac
import json
import os
import secrets
from datetime import date, datetime, timezone
from typing import Optional

from .errors import StateError
from .fsutil import describe_oserror, locked_directory, replace_file

EXPIRY_FILE = "expiry.json"


def fingerprint(salt: str, *parts: str) -> str:
    """A keyed hash of ``parts``: proves equality later without storing them."""
    message = "\0".join(parts).encode("utf-8")
    return hmac.new(bytes.fromhex(salt), message, hashlib.sha256).hexdigest()


def new_salt() -> str:
    return secrets.token_hex(16)


def _load(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(describe_oserror(path, "read", exc)) from None
    except ValueError:
        raise StateError(f"{path}: is not valid JSON; delete it and record the expiry "
                         f"again with: onedesk-azuread set --expires YYYY-MM-DD") from None
    if not isinstance(record, dict):
        raise StateError(f"{path}: is not a JSON object; delete it and record the expiry again")
    return record


def save_json(state_dir: str, name: str, record: dict) -> None:
    """Write one state file atomically, mode 0600, in a mode-0700 directory."""
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StateError(describe_oserror(state_dir, "create the directory", exc)) from None
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    with locked_directory(state_dir, StateError):
        replace_file(os.path.join(state_dir, name), data, uid=0, gid=0, error=StateError)


def load_expiry(state_dir: str, secret: Optional[str]) -> Optional[date]:
    """The expiry recorded for ``secret``, or None (none recorded, or for another secret)."""
    if not secret:
        return None
    path = os.path.join(state_dir, EXPIRY_FILE)
    record = _load(path)
    if record is None:
        return None
    try:
        salt = record["secret_salt"]
        if not hmac.compare_digest(fingerprint(salt, secret), record["secret_fingerprint"]):
            return None
        return date.fromisoformat(record["expires"])
    except (KeyError, TypeError, ValueError):
        raise StateError(f"{path}: is not an expiry record; delete it and record the expiry "
                         f"again with: onedesk-azuread set --expires YYYY-MM-DD") from None


def save_expiry(state_dir: str, secret: str, expires: date) -> None:
    salt = new_salt()
    save_json(state_dir, EXPIRY_FILE, {
        "expires": expires.isoformat(),
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "secret_fingerprint": fingerprint(salt, secret),
        "secret_salt": salt,
    })


def clear_expiry(state_dir: str) -> None:
    path = os.path.join(state_dir, EXPIRY_FILE)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StateError(describe_oserror(path, "remove", exc)) from None
