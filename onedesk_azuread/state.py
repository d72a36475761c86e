"""The tool's own state under /var/lib/onedesk-azuread.

Nothing here stores a secret. The expiry record names its secret the way the
Azure portal lists secrets: by the 3-character hint (what `show` prints
anyway) and the length, so an expiry recorded for an old secret does not apply
to a new one. Matching that needs no hashing, which keeps `show` quick;
fingerprints that must prove equality (applied state) use a salted HMAC.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone

from .errors import StateError
from .fsutil import describe_oserror, locked_directory, replace_file

EXPIRY_FILE = "expiry.json"

# hashlib, hmac, secrets and json are imported where used: hashlib loads
# OpenSSL, and `show` on a server with no recorded expiry needs none of them.


def fingerprint(salt: str, *parts: str) -> str:
    """A keyed hash of ``parts``: proves equality later without storing them."""
    import hashlib
    import hmac

    message = "\0".join(parts).encode("utf-8")
    return hmac.new(bytes.fromhex(salt), message, hashlib.sha256).hexdigest()


def new_salt() -> str:
    import secrets

    return secrets.token_hex(16)


def _load(path: str) -> dict | None:
    import json

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
    import json

    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StateError(describe_oserror(state_dir, "create the directory", exc)) from None
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    with locked_directory(state_dir, StateError):
        replace_file(os.path.join(state_dir, name), data, uid=0, gid=0, error=StateError)


def load_expiry(state_dir: str, secret: str | None) -> date | None:
    """The expiry recorded for ``secret``, or None (none recorded, or for another secret)."""
    if not secret:
        return None
    path = os.path.join(state_dir, EXPIRY_FILE)
    record = _load(path)
    if record is None:
        return None
    try:
        if (record["secret_hint"], record["secret_length"]) != secret_label(secret):
            return None
        return date.fromisoformat(record["expires"])
    except (KeyError, TypeError, ValueError):
        raise StateError(f"{path}: is not an expiry record; delete it and record the expiry "
                         f"again with: onedesk-azuread set --expires YYYY-MM-DD") from None


def secret_label(secret: str):
    """How Azure's portal tells a secret apart without showing it: hint and length."""
    return secret[:3], len(secret)


def save_expiry(state_dir: str, secret: str, expires: date) -> None:
    hint, length = secret_label(secret)
    save_json(state_dir, EXPIRY_FILE, {
        "expires": expires.isoformat(),
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "secret_hint": hint,
        "secret_length": length,
    })


def clear_expiry(state_dir: str) -> None:
    path = os.path.join(state_dir, EXPIRY_FILE)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StateError(describe_oserror(path, "remove", exc)) from None


# --- Applied state: what the OneDesk packages were installed with ---------------------------

APPLIED_FILE = "applied.json"
IN_SYNC = "in sync"
PENDING = "pending"
NEVER_APPLIED = "never applied"


def record_applied(state_dir: str, client_id: str, secret: str, packages: list) -> dict:
    """Record that ``packages`` (NEVRAs) were installed with this pair. No secret is stored."""
    salt = new_salt()
    record = {
        "applied": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint(salt, client_id, secret),
        "salt": salt,
        "packages": sorted(packages),
    }
    save_json(state_dir, APPLIED_FILE, record)
    return record


def load_applied(state_dir: str) -> dict | None:
    path = os.path.join(state_dir, APPLIED_FILE)
    record = _load(path)
    if record is not None and not all(k in record for k in ("fingerprint", "salt", "applied")):
        raise StateError(f"{path}: is not an applied-state record; delete it and reinstall "
                         f"the packages with: onedesk-azuread apply")
    return record


def sync_state(record: dict | None, client_id: str | None, secret: str | None) -> str:
    """IN_SYNC when the packages were installed with exactly this pair."""
    import hmac

    if record is None:
        return NEVER_APPLIED
    if client_id is None or secret is None:
        return PENDING
    current = fingerprint(record["salt"], client_id, secret)
    return IN_SYNC if hmac.compare_digest(current, record["fingerprint"]) else PENDING
