"""The tool's own state under /var/lib/onedesk-azuread.

Nothing here stores a secret. The expiry record names its secret the way the
Azure portal lists secrets: by the 3-character hint (what `show` prints
anyway) and the length, so an expiry recorded for an old secret does not apply
to a new one. Matching that needs no hashing, which keeps `show` quick;
fingerprints that must prove equality (applied state) use a salted HMAC.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import date, datetime, timezone

from .errors import StateError, UnreadableRecord
from .fsutil import (
    Writing,
    describe_oserror,
    private_directory,
    read_private_file,
    remove_stale_temps,
    replace_file,
)
from .fsutil import locked as fsutil_locked

EXPIRY_FILE = "expiry.json"
# The expiry record's format. A record without "version" is version 1 (written before the
# field was); fields this version does not know are ignored, so a newer version may add some.
EXPIRY_VERSION = 1


def fingerprint(salt: str, *parts: str) -> str:
    """A keyed hash of ``parts``: proves equality later without storing them."""
    # hashlib (and hmac and secrets, which import it) loads OpenSSL: 4 ms of `show`'s
    # start-up, which never hashes (tests/test_imports.py).
    import hashlib
    import hmac

    message = "\0".join(parts).encode("utf-8")
    return hmac.new(bytes.fromhex(salt), message, hashlib.sha256).hexdigest()


def new_salt() -> str:
    # os.urandom is what secrets.token_hex reads; secrets itself imports random and base64,
    # about 9 ms of dnf 5's pre_transaction, a process of its own on every OneDesk transaction.
    return os.urandom(16).hex()


# A state file is a few hundred bytes; anything much bigger was not written by us.
STATE_FILE_LIMIT = 64 * 1024
LOCK_FILE = "lock"
FIX_EXPIRY = ("delete it and record the expiry again with: "
              "onedesk-azuread set --expires YYYY-MM-DD")
FIX_APPLIED = "delete it and reinstall the packages with: onedesk-azuread apply"
FIX_OTHER = "move it out of the way and try again"
# No `re` in this module: dnf 5's post_transaction imports it, in a process of its own on
# every OneDesk transaction, and re (with enum) is about 5 ms of that process's start.
_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdef"


def _only(text: str, allowed: str) -> bool:
    """Is ``text`` non-empty and made of ``allowed`` characters alone?"""
    return bool(text) and not text.strip(allowed)


def parse_date(text: str) -> date:
    """Exactly YYYY-MM-DD, on every Python; ValueError otherwise.

    date.fromisoformat alone is not enough: from 3.11 it also takes 20261201
    and ISO week dates (2026-W48-2).
    """
    if not (isinstance(text, str) and len(text) == 10 and text[4] == text[7] == "-"
            and _only(text[:4] + text[5:7] + text[8:], _DIGITS)):
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD")
    return date.fromisoformat(text)


def _fix_for(path: str) -> str:
    return {EXPIRY_FILE: FIX_EXPIRY, APPLIED_FILE: FIX_APPLIED}.get(os.path.basename(path),
                                                                      FIX_OTHER)


def state_directory(state_dir: str, create: bool = False) -> bool:
    """Check (and repair, or refuse) the state directory; False when it does not exist."""
    return private_directory(state_dir, StateError, create=create)


@contextlib.contextmanager
def locked(state_dir: str) -> Iterator[None]:
    """Hold the tool's write lock, ``<state_dir>/lock``: for the settings file and the state.

    Reentrant within a process, with a bounded wait (fsutil.locked).
    """
    state_directory(state_dir, create=True)
    with fsutil_locked(os.path.join(state_dir, LOCK_FILE), StateError):
        yield


def _load(path: str, fix: str | None = None, dir_fd: int | None = None) -> dict | None:
    """A JSON object from the state file ``path``, None when absent.

    The directory is checked first (a StateError), unless the caller holds it open as
    ``dir_fd``, checked; the file is read without following links or blocking
    (fsutil.read_private_file): a file that is not ours, or garbage in it, is an
    UnreadableRecord. ``fix`` ends every error message.
    """
    fix = fix or _fix_for(path)
    if dir_fd is None and not state_directory(os.path.dirname(os.path.abspath(path))):
        return None
    data = read_private_file(path, STATE_FILE_LIMIT, UnreadableRecord, fix, dir_fd=dir_fd)
    if data is None:
        return None
    # Only now: json costs `show` 2.6 ms (make bench), and one with no expiry recorded
    # reads no state file (tests/test_fleet.py).
    import json

    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: RecursionError
        raise UnreadableRecord(f"{path}: is not valid JSON; {fix}") from None
    if not isinstance(record, dict):
        raise UnreadableRecord(f"{path}: is not a JSON object; {fix}")
    return record


def encode(record: dict) -> bytes:
    """A state file's bytes."""
    import json  # json's cost: see _load

    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def save_json(state_dir: str, name: str, record: dict) -> None:
    """Write one state file atomically, mode 0600, in a mode-0700 directory, under the lock."""
    data = encode(record)
    with locked(state_dir):
        path = os.path.join(state_dir, name)
        remove_stale_temps(path)
        replace_file(path, data, Writing(uid=0, gid=0, error=StateError))


NOT_AN_EXPIRY_RECORD = "{path}: is not an expiry record; " + FIX_EXPIRY
NEWER_EXPIRY_RECORD = ("{path}: is a version {version} expiry record, from a newer onedesk-azuread "
                       "than this one (version " + str(EXPIRY_VERSION) + "); update "
                       "onedesk-azuread, or " + FIX_EXPIRY)
EXPIRY_NOT_A_DATE = "{path}: its expiry is not a date written YYYY-MM-DD; " + FIX_EXPIRY


def load_expiry(state_dir: str, secret: str | None) -> date | None:
    """The expiry recorded for ``secret``, or None (none recorded, or for another secret).

    A record that is there but cannot be read is an UnreadableRecord (the callers
    report it as a finding); a state directory that cannot be trusted, a StateError.
    """
    if not secret:
        return None
    path = os.path.join(state_dir, EXPIRY_FILE)
    record = _load(path)
    if record is None:
        return None
    version = record.get("version", EXPIRY_VERSION)
    if not (type(version) is int and version == EXPIRY_VERSION):  # True == 1: not a version
        newer = type(version) is int and version > EXPIRY_VERSION
        raise UnreadableRecord((NEWER_EXPIRY_RECORD if newer else NOT_AN_EXPIRY_RECORD)
                               .format(path=path, version=version))
    expires, hint, length = (record.get(k) for k in ("expires", "secret_hint", "secret_length"))
    if not (isinstance(expires, str) and isinstance(hint, str) and type(length) is int):
        raise UnreadableRecord(NOT_AN_EXPIRY_RECORD.format(path=path))
    try:
        when = parse_date(expires)
    except ValueError:
        raise UnreadableRecord(EXPIRY_NOT_A_DATE.format(path=path)) from None
    if (hint, length) != secret_label(secret):
        return None
    return when


def secret_label(secret: str):
    """How Azure's portal tells a secret apart without showing it: hint and length."""
    # Imported here: validation brings the bash scanner (about 10 ms), which dnf 5's
    # post_transaction, importing this module on every OneDesk transaction, never needs.
    from .validation import secret_hint

    return secret_hint(secret), len(secret)


def save_expiry(state_dir: str, secret: str, expires: date) -> None:
    hint, length = secret_label(secret)
    save_json(state_dir, EXPIRY_FILE, {
        "version": EXPIRY_VERSION,
        "expires": expires.isoformat(),
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "secret_hint": hint,
        "secret_length": length,
    })


def remove_state_file(state_dir: str, name: str) -> None:
    """Delete one state file under the lock; nothing to do when it (or the directory) is absent."""
    if not state_directory(state_dir):
        return
    path = os.path.join(state_dir, name)
    with locked(state_dir):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(describe_oserror(path, "remove", exc)) from None


def clear_expiry(state_dir: str) -> None:
    remove_state_file(state_dir, EXPIRY_FILE)


# --- Applied state: what the OneDesk packages were installed with ---------------------------

APPLIED_FILE = "applied.json"
IN_SYNC = "in sync"
PENDING = "pending"
NEVER_APPLIED = "never applied"


def record_applied(state_dir: str, client_id: str, secret: str, packages: list) -> dict:
    """Record that ``packages`` (NEVRAs) were installed with this pair. No secret is stored."""
    record = applied_record(client_id, secret, packages)
    save_json(state_dir, APPLIED_FILE, record)
    return record


def applied_record(client_id: str, secret: str, packages: list) -> dict:
    """The applied-state record of ``packages`` installed with this pair, not yet written."""
    salt = new_salt()
    return {
        "applied": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint(salt, client_id, secret),
        "salt": salt,
        "packages": sorted(packages),
    }


def load_applied(state_dir: str, dir_fd: int | None = None) -> dict | None:
    """The applied-state record in ``state_dir`` (held open as ``dir_fd``, if given)."""
    path = os.path.join(state_dir, APPLIED_FILE)
    record = _load(path, dir_fd=dir_fd)
    if record is None:
        return None
    fields = [record.get(k) for k in ("fingerprint", "salt", "applied")]
    packages = record.get("packages", [])
    if not (all(isinstance(f, str) for f in fields)
            and all(_only(f, _HEX_DIGITS) and len(f) % 2 == 0 for f in fields[:2])
            and isinstance(packages, list) and all(isinstance(p, str) for p in packages)):
        raise StateError(f"{path}: is not an applied-state record; {FIX_APPLIED}")
    return record


def sync_state(record: dict | None, client_id: str | None, secret: str | None) -> str:
    """IN_SYNC when the packages were installed with exactly this pair."""
    import hmac  # hashlib's cost: see fingerprint

    if record is None:
        return NEVER_APPLIED
    if client_id is None or secret is None:
        return PENDING
    current = fingerprint(record["salt"], client_id, secret)
    return IN_SYNC if hmac.compare_digest(current, record["fingerprint"]) else PENDING
