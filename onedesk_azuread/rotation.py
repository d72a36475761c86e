"""`rotate`'s journal (rotate.json) and the record of the key this server created (key.json).

A kill cannot be caught, so `rotate` writes down what it is about to do before
each step that leaves something in Azure or on this server: the display name
before `az` adds the secret, the new key's id as soon as the list shows it
(before the wait), then that it was written and applied. `status` and the next
`rotate` read the journal and name what was left behind and the one command
that finishes or undoes it (`rotate --finish`); a rotation that completes
removes it.

key.json ties an Azure key id to the secret this server's `rotate` created: the
proof that a key is this server's own when a fleet shares one app.

Neither file holds a secret: the new secret is named by its key id, its
3-character hint and a salted HMAC (as applied.json), which tells whether the
settings file holds it without storing it.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime, timezone
from typing import NamedTuple

from . import fsutil, state
from .errors import StateError
from .paths import Paths
from .validation import secret_hint

JOURNAL_FILE = "rotate.json"
KEY_FILE = "key.json"
LOCK_FILE = "rotate.lock"
VERSION = 1

# The phases, in order. Each is written before the step it names begins, or as soon as
# the step before it completed.
ADDING = "adding"  # az may be adding the secret; its key id is not known yet
ADDED = "added"  # Azure holds the new secret (key_id); it is not written here
WRITTEN = "written"  # the settings file holds it; the packages may not be applied
APPLIED = "applied"  # applied and in sync; the old secret may be being retired
PHASES = (ADDING, ADDED, WRITTEN, APPLIED)

_PHASE_WORDS = {
    ADDING: "while adding the new secret in Azure",
    ADDED: "before the new secret was written",
    WRITTEN: "after writing the new secret, before the packages were applied",
    APPLIED: "after applying the new secret, before the old one was retired",
}

UNREADABLE = ("{path}: cannot be read as onedesk-azuread rotate's journal; compare "
              "`az ad app credential list --id CID` with this server's secret, move the file "
              "away, then run: onedesk-azuread status")
FIX_KEY = ("delete it (the next rotate then ties the old secret to this server by its display "
           "name only)")
BAD_KEY_RECORD = "{path}: is not a key record; " + FIX_KEY
# What a journal left behind, for status and the next rotate: one line, with the command.
UNFINISHED = "the rotation started {started} was interrupted {when}; {left}; {fix}"
RUNNING = "a rotation started {started} is running ({phase}); wait for it to finish"
LEFT_UNKNOWN = ("Azure may hold a new secret named '{name}' that nothing uses (its key id "
                "was not read)")
LEFT_FOUND = "Azure holds a new secret {keys} named '{name}' that nothing uses"
LEFT_UNUSED = "Azure holds a new secret {key} (hint {hint}…) that nothing uses"
LEFT_UNAPPLIED = ("the new secret {key} is written to {path} but not applied: OneDesk still "
                  "uses the old secret")
LEFT_APPLIED = "the new secret {key} is written and applied"
LEFT_OLD = "; the old secret {old} was not retired"
FIX_UNDO = "undo it with: {command} (deletes the unused secret in Azure, then forgets it)"
FIX_FINISH = "finish it with: {command} (applies it{retire}, then forgets it)"
FIX_RETIRE = ", retires the old secret {old}"
FIX_FORGET = "finish it with: {command}{retire}"
FIX_FORGET_RETIRE = " (retires the old secret {old}, then forgets it)"


class Journal(NamedTuple):
    """A rotation's journal as read from the state directory."""

    path: str
    record: dict  # see start()

    @property
    def phase(self) -> str:
        return self.record["phase"]

    @property
    def started(self) -> str:
        return self.record["started"]

    @property
    def client_id(self) -> str:
        return self.record["client_id"]

    @property
    def display_name(self) -> str:
        return self.record["display_name"]

    @property
    def key_id(self) -> str | None:
        return self.record.get("key_id")

    @property
    def hint(self) -> str | None:
        return self.record.get("secret_hint")

    @property
    def old_key(self) -> str | None:
        return self.record.get("old_key_id")

    @property
    def retire(self) -> bool:
        return self.record.get("retire") is True

    @property
    def before(self) -> list[str]:
        return list(self.record.get("before", []))

    def holds(self, secret: str | None) -> bool:
        """Is ``secret`` the new secret this rotation created?"""
        salt, mark = self.record.get("salt"), self.record.get("fingerprint")
        if not (secret and salt and mark):
            return False
        return hmac.compare_digest(state.fingerprint(salt, self.client_id, secret), mark)

    def left(self, holds_new: bool, in_sync: bool) -> bool:
        """Did it leave anything behind? Not once its new secret is written and applied and no
        old secret was to be retired (then only the journal is left, and may go)."""
        return not (holds_new and in_sync and not (self.retire and self.old_key))

    def when(self) -> str:
        return _PHASE_WORDS[self.phase]

    def command(self) -> str:
        """The one command that finishes or undoes it."""
        return finish_command(self.record.get("root", "/"), self.record.get("settings"))

    def describe(self, holds_new: bool, in_sync: bool, found: list[str] | None = None) -> str:
        """What it left behind and the command, in one line. ``holds_new``: the settings
        file holds the new secret; ``found``: the key ids Azure has under its display name
        (when its key id was never read and az was asked)."""
        command = self.command()
        retiring = self.retire and self.old_key
        if not holds_new:
            if self.key_id:
                left = LEFT_UNUSED.format(key=self.key_id, hint=self.hint)
            elif found:
                left = LEFT_FOUND.format(keys=", ".join(found), name=self.display_name)
            else:
                left = LEFT_UNKNOWN.format(name=self.display_name)
            fix = FIX_UNDO.format(command=command)
        elif not in_sync:
            left = LEFT_UNAPPLIED.format(key=self.key_id, path=self.record.get("settings"))
            fix = FIX_FINISH.format(command=command, retire=FIX_RETIRE.format(old=self.old_key)
                                    if retiring else "")
        else:
            left = LEFT_APPLIED.format(key=self.key_id)
            if retiring:
                left += LEFT_OLD.format(old=self.old_key)
            fix = FIX_FORGET.format(command=command, retire=FIX_FORGET_RETIRE.format(
                old=self.old_key) if retiring else "")
        return UNFINISHED.format(started=self.started, when=self.when(), left=left, fix=fix)

    def as_dict(self) -> dict:
        return {"journal": self.path, "started": self.started, "phase": self.phase,
                "client_id": self.client_id, "display_name": self.display_name,
                "new_key_id": self.key_id, "secret_hint": self.hint,
                "old_key_id": self.old_key, "retire_old": self.retire,
                "command": self.command()}


def path_of(paths: Paths) -> str:
    return os.path.join(paths.state_dir, JOURNAL_FILE)


def finish_command(root: str, settings: str | None = None) -> str:
    words = ["onedesk-azuread"]
    if os.path.abspath(root) != "/":
        words += ["--root", root]
    if settings and os.path.abspath(settings) != Paths.under(root).settings:
        words += ["--file", settings]
    return " ".join([*words, "rotate", "--finish"])


class Intent(NamedTuple):
    """What a rotation sets out to do, journalled before it begins."""

    client_id: str  # the app
    display_name: str  # the new secret's
    before: list[str]  # the key ids the app has before it
    old_key: str | None  # the old key it will retire (None: none)
    retire: bool  # it was asked to retire the old secret


def start(paths: Paths, intent: Intent) -> Journal:
    """Journal a rotation before az adds anything (phase ADDING)."""
    now = _now()
    record = {"version": VERSION, "started": now, "updated": now, "phase": ADDING,
              "root": paths.root, "settings": paths.settings, "client_id": intent.client_id,
              "display_name": intent.display_name, "before": sorted(intent.before),
              "key_id": None, "old_key_id": intent.old_key, "retire": intent.retire,
              "pid": os.getpid()}
    state.save_json(paths.state_dir, JOURNAL_FILE, record)
    return Journal(path_of(paths), record)


def advance(paths: Paths, journal: Journal, phase: str, secret: str | None = None,
            **fields) -> Journal:
    """Record that ``phase`` begins; ``secret`` (the new one) is kept as a salted HMAC only."""
    record = dict(journal.record, phase=phase, updated=_now(), **fields)
    if secret is not None:
        salt = state.new_salt()
        record.update(salt=salt, fingerprint=state.fingerprint(salt, journal.client_id, secret),
                      secret_hint=secret_hint(secret))
    state.save_json(paths.state_dir, JOURNAL_FILE, record)
    return Journal(journal.path, record)


def load(paths: Paths) -> Journal | None:
    """The journal of an unfinished rotation, or None."""
    path = path_of(paths)
    try:
        record = state._load(path)
    except StateError:
        raise StateError(UNREADABLE.format(path=path)) from None
    if record is None:
        return None
    strings = all(isinstance(record.get(k), str) and record.get(k)
                  for k in ("started", "client_id", "display_name"))
    optional = all(record.get(k) is None or isinstance(record.get(k), str)
                   for k in ("key_id", "old_key_id", "secret_hint", "salt", "fingerprint"))
    before = record.get("before", [])
    if (record.get("version") != VERSION or record.get("phase") not in PHASES or not strings
            or not optional or not isinstance(before, list)
            or not all(isinstance(k, str) for k in before)):
        raise StateError(UNREADABLE.format(path=path))
    return Journal(path, record)


def forget(paths: Paths) -> None:
    """The rotation completed, or left nothing behind."""
    state.remove_state_file(paths.state_dir, JOURNAL_FILE)


def running(paths: Paths) -> bool:
    """Is a rotation running now (holding rotate.lock)?"""
    return fsutil.held(os.path.join(paths.state_dir, LOCK_FILE))


# --- The key this server created ------------------------------------------------------------

def save_key(state_dir: str, client_id: str, secret: str, key_id: str,
             display_name: str) -> None:
    """Record that ``key_id`` is the Azure key of ``secret``, created by this server."""
    salt = state.new_salt()
    state.save_json(state_dir, KEY_FILE, {
        "key_id": key_id, "client_id": client_id, "display_name": display_name,
        "salt": salt, "fingerprint": state.fingerprint(salt, client_id, secret),
        "recorded": _now()})


def load_key(state_dir: str, client_id: str, secret: str) -> str | None:
    """The key id this server recorded for this very pair, or None."""
    path = os.path.join(state_dir, KEY_FILE)
    fix = BAD_KEY_RECORD.format(path=path)
    record = state._load(path, FIX_KEY)
    if record is None:
        return None
    fields = [record.get(k) for k in ("key_id", "client_id", "salt", "fingerprint")]
    if not all(isinstance(f, str) and f for f in fields):
        raise StateError(fix)
    try:
        bytes.fromhex(fields[2])
    except ValueError:
        raise StateError(fix) from None
    if fields[1] != client_id:
        return None
    mark = state.fingerprint(fields[2], client_id, secret)
    return fields[0] if hmac.compare_digest(mark, fields[3]) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
