"""`apply`'s journal: its plan and how far it got, so that a killed apply can be completed.

Like dpkg's journal (`dpkg --configure -a`): a SIGKILL, a power cut or a lost
session cannot be caught, so before dnf changes anything `apply` writes down
what the removal takes away and what must be installed again, and moves the
phase on as each step completes. `status` reports a journal as an unfinished
apply; the next `apply` completes it. The journal names packages and dnf
arguments only, never a setting's value.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import NamedTuple

from . import fsutil, state
from .errors import StateError
from .paths import Paths

JOURNAL_FILE = "apply.json"
LOCK_FILE = "apply.lock"
VERSION = 1

# The phases, in order. Each is written before the step it names begins.
PREFETCHING = "prefetching"  # downloading; nothing removed yet
REMOVING = "removing"  # dnf remove may have run, in part or in full
INSTALLING = "installing"  # the removal succeeded; dnf install may have run
CONFIRMING = "confirming"  # the install succeeded; status not yet confirmed
PHASES = (PREFETCHING, REMOVING, INSTALLING, CONFIRMING)

_PHASE_WORDS = {
    PREFETCHING: "before it removed anything",
    REMOVING: "while removing the packages",
    INSTALLING: "after removing the packages, before they were all installed again",
    CONFIRMING: "after installing the packages again, before confirming the result",
}

UNREADABLE = ("{path}: cannot be read as onedesk-azuread apply's journal; see which OneDesk "
              "packages are installed (rpm -qa 'onedesk*'), move the file away, then run: "
              "{command}")
BUSY = ("another onedesk-azuread apply is running (it holds {path}); wait for it to finish, "
        "then run: onedesk-azuread status")


class Journal(NamedTuple):
    """An apply's journal as read from the state directory."""

    path: str
    record: dict  # see start()

    @property
    def phase(self) -> str:
        return self.record["phase"]

    @property
    def removed(self) -> list[str]:
        return list(self.record["removed"])

    @property
    def reinstalled(self) -> list[str]:
        return list(self.record["reinstalled"])

    @property
    def started(self) -> str:
        return self.record["started"]

    @property
    def install_began(self) -> bool:
        return PHASES.index(self.phase) >= PHASES.index(INSTALLING)

    def when(self) -> str:
        return _PHASE_WORDS[self.phase]

    def command(self) -> str:
        return finish_command(self.record.get("root", "/"), self.record.get("settings"))


def path_of(paths: Paths) -> str:
    return os.path.join(paths.state_dir, JOURNAL_FILE)


def finish_command(root: str, settings: str | None = None) -> str:
    """The command that completes a journalled apply, with the options it ran with."""
    words = ["onedesk-azuread"]
    if os.path.abspath(root) != "/":
        words += ["--root", root]
    default = Paths.under(root).settings
    if settings and os.path.abspath(settings) != default:
        words += ["--file", settings]
    words.append("apply")
    return " ".join(words)


def start(paths: Paths, removed: list[str], reinstalled: list[str], steps: list[dict]) -> Journal:
    """Journal a plan before dnf runs (phase PREFETCHING)."""
    now = _now()
    record = {
        "version": VERSION,
        "started": now,
        "updated": now,
        "phase": PREFETCHING,
        "root": paths.root,
        "settings": paths.settings,
        "removed": sorted(removed),
        "reinstalled": list(reinstalled),
        "steps": steps,
        "pid": os.getpid(),
    }
    state.save_json(paths.state_dir, JOURNAL_FILE, record)
    return Journal(path_of(paths), record)


def advance(paths: Paths, journal: Journal, phase: str) -> Journal:
    """Record that ``phase`` begins (the steps before it completed)."""
    record = dict(journal.record, phase=phase, updated=_now())
    state.save_json(paths.state_dir, JOURNAL_FILE, record)
    return Journal(journal.path, record)


def load(paths: Paths) -> Journal | None:
    """The journal of an unfinished apply, or None."""
    path = path_of(paths)
    command = finish_command(paths.root, paths.settings)
    try:
        record = state._load(path)
    except StateError:
        raise StateError(UNREADABLE.format(path=path, command=command)) from None
    if record is None:
        return None
    names_ok = all(isinstance(record.get(key), list) and
                   all(isinstance(name, str) for name in record[key])
                   for key in ("removed", "reinstalled"))
    if (record.get("version") != VERSION or record.get("phase") not in PHASES or not names_ok
            or not isinstance(record.get("started"), str)):
        raise StateError(UNREADABLE.format(path=path, command=command))
    return Journal(path, record)


def finish(paths: Paths) -> None:
    """The apply completed (or changed nothing): forget its journal."""
    state.remove_state_file(paths.state_dir, JOURNAL_FILE)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- One apply at a time ----------------------------------------------------------------

def _lock_path(paths: Paths) -> str:
    return os.path.join(paths.state_dir, LOCK_FILE)


def lock(paths: Paths) -> int:
    """Take apply's own lock (never waits); returns the fd to pass to unlock()."""
    path = _lock_path(paths)
    state.state_directory(paths.state_dir, create=True)  # checked, repaired or refused
    # The same checks as the tool's write lock: our own regular file, no symlink followed.
    fd = fsutil.open_lock_file(path, StateError)
    try:
        if fsutil.try_lock(fd, path, StateError):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise StateError(BUSY.format(path=path))


def unlock(fd: int) -> None:
    os.close(fd)  # closing releases the lock


def running(paths: Paths) -> bool:
    """Is an apply running now (holding the lock)?"""
    return fsutil.held(_lock_path(paths))
