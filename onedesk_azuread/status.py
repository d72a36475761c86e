"""Were the current entries applied to the installed OneDesk packages?"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from . import CLIENT_ID, SECRET, journal, operations, packages, rotation, state, validation
from .paths import Paths

NOT_INSTALLED = "not installed"
EXPIRY_UNREADABLE = "unknown: the record cannot be read (run: onedesk-azuread check)"


class Unfinished(NamedTuple):
    """An apply that has not completed: its journal is still in the state directory."""

    journal: journal.Journal
    missing: list[str]  # what the apply must install again and is not installed now
    running: bool  # an apply holds the lock right now (it is in progress, not killed)

    def explain(self) -> str:
        found = self.journal
        if self.running:
            return (f"in progress: an apply started {found.started} is running "
                    f"({found.phase}); wait for it to finish")
        gone = (f"; not installed again: {', '.join(self.missing)}" if self.missing
                else "; nothing is missing")
        return (f"unfinished: the apply started {found.started} was interrupted "
                f"{found.when()}{gone}; finish it with: {found.command()}")

    def as_dict(self) -> dict:
        found = self.journal
        return {
            "journal": found.path,
            "started": found.started,
            "phase": found.phase,
            "running": self.running,
            "removed": found.removed,
            "reinstalled": found.reinstalled,
            "missing": self.missing,
            "command": found.command(),
        }


class UnfinishedRotation(NamedTuple):
    """A rotation that has not completed: its journal is still in the state directory."""

    journal: rotation.Journal
    holds_new: bool  # the settings file holds the rotation's new secret
    in_sync: bool  # and the packages were applied with it
    running: bool  # a rotate holds rotate.lock right now (in progress, not killed)

    def explain(self) -> str:
        found = self.journal
        if self.running:
            return rotation.RUNNING.format(started=found.started, phase=found.phase)
        return found.describe(self.holds_new, self.in_sync)

    def as_dict(self) -> dict:
        return {**self.journal.as_dict(), "new_secret_written": self.holds_new,
                "running": self.running, "explanation": self.explain()}


class Status(NamedTuple):
    """Whether the installed packages carry the current entries."""

    path: str
    errors: list[validation.Finding]  # validation errors of the entries as they stand
    sync: str  # state.IN_SYNC, state.PENDING, state.NEVER_APPLIED or NOT_INSTALLED
    applied: dict | None  # the applied-state record (no secret in it)
    installed: dict[str, str | None]  # OneDesk package -> installed NEVRA or None
    expires: date | None
    unfinished: Unfinished | None = None  # an apply's journal is still there
    rotation: UnfinishedRotation | None = None  # a rotation left something behind (its journal)

    @property
    def ok(self) -> bool:
        return not self.errors and self.sync == state.IN_SYNC and self.unfinished is None

    def explain(self) -> str:
        if self.sync == state.IN_SYNC:
            return "in sync: the installed packages were set up with these settings"
        if self.sync == NOT_INSTALLED:
            return (f"not installed: {packages.DB_UTILS} is not installed; install the OneDesk "
                    f"packages (onedesk-azuread apply)")
        if self.sync == state.PENDING:
            return ("pending: the settings changed since the packages were installed; "
                    "run `onedesk-azuread apply`")
        return ("never applied: the packages were not installed with these settings by dnf "
                "with the onedesk-azuread plugin; run `onedesk-azuread apply`")

    def lines(self) -> list[str]:
        """`status`'s report."""
        valid = "valid" if not self.errors else (
            f"{len(self.errors)} error(s) ({', '.join(f.code for f in self.errors)}); "
            f"run: onedesk-azuread check")
        said = [f"settings:  {self.path}: {valid}"]
        if self.unfinished:
            said.append(f"apply:     {self.unfinished.explain()}")
        if self.rotation:
            said.append(f"rotate:    {self.rotation.explain()}")
        said.append(f"applied:   {self.explain()}")
        if self.applied:
            said.append(f"           last applied {self.applied.get('applied')} with "
                        f"{', '.join(self.applied.get('packages', []))}")
        said += [f"package:   {name}: {nevra or NOT_INSTALLED}"
                 for name, nevra in self.installed.items()]
        expires = self.expires.isoformat() if self.expires else "not recorded"
        if any(f.code == validation.EXPIRY_UNREADABLE for f in self.errors):
            expires = EXPIRY_UNREADABLE
        said.append(f"expires:   {expires}")
        return said

    def as_dict(self) -> dict:
        return {
            "file": self.path,
            "valid": not self.errors,
            "errors": [f.code for f in self.errors],
            "state": self.sync,
            "applied": (self.applied or {}).get("applied"),
            "applied_packages": (self.applied or {}).get("packages", []),
            "installed": self.installed,
            "expires": self.expires.isoformat() if self.expires else None,
            "unfinished_apply": self.unfinished.as_dict() if self.unfinished else None,
            "unfinished_rotation": self.rotation.as_dict() if self.rotation else None,
        }


def status(paths: Paths, unfinished_too: bool = True) -> Status:
    """``unfinished_too``: also look for an apply's journal (apply's own confirmation
    does not: it knows it is unfinished)."""
    info = operations.inspect(paths)
    record = state.load_applied(paths.state_dir)
    found = packages.installed(paths.root)
    unfinished = None
    interrupted = journal.load(paths) if unfinished_too else None
    if interrupted is not None:
        extra = [name for name in interrupted.reinstalled if name not in found]
        have = {**found, **(packages.installed(paths.root, extra) if extra else {})}
        missing = [name for name in interrupted.reinstalled if have[name] is None]
        unfinished = Unfinished(interrupted, missing, journal.running(paths))
    # Compare what the plugin exports: the canonical values (`check --fix`'s).
    values = validation.canonical_values(info.snapshot.doc)
    if found[packages.DB_UTILS] is None:
        sync = NOT_INSTALLED
    else:
        sync = state.sync_state(record, values.get(CLIENT_ID), values.get(SECRET))
    rotating = _rotation(paths, values.get(SECRET), sync) if unfinished_too else None
    return Status(paths.settings, validation.errors(info.findings), sync, record, found,
                  info.expires, unfinished, rotating)


def _rotation(paths: Paths, secret: str | None, sync: str) -> UnfinishedRotation | None:
    """What an interrupted rotate left behind, from its journal (no need to ask Azure)."""
    found = rotation.load(paths)
    if found is None:
        return None
    holds_new = found.holds(secret)
    in_sync = holds_new and sync == state.IN_SYNC
    running = rotation.running(paths)
    if not running and not found.left(holds_new, in_sync):
        return None
    return UnfinishedRotation(found, holds_new, in_sync, running)
