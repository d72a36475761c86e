"""What the commands do, over the settings file and the tool's state (no click here)."""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from collections.abc import Callable
from datetime import date

from . import CLIENT_ID, KEYS, SECRET, settings, shellfile, state, validation
from .errors import OnedeskError
from .paths import Paths
from .settings import Snapshot
from .validation import Finding


class Refused(OnedeskError):
    """Validation found errors in what would be written; nothing was written."""

    def __init__(self, path: str, findings: list[Finding]):
        self.path = path
        self.findings = findings
        count = len(validation.errors(findings))
        super().__init__(f"{path}: not changed: {count} error{'s' if count != 1 else ''} "
                         f"(fix them, or write anyway with --force)")


class VerificationFailed(OnedeskError):
    """Azure AD did not confirm the pair (or could not be asked); nothing was written."""

    def __init__(self, path: str, result):
        self.result = result
        self.exit_code = result.exit_code
        super().__init__(f"{path}: not changed: {result.message} "
                         f"(write anyway with --force)")


def mask(secret: str) -> str:
    """What may be shown of a secret: the 3-character hint Azure itself shows."""
    hint = validation.secret_hint(secret)
    return hint + "…" if len(secret) > len(hint) else "…"


class Inspection(namedtuple("Inspection", "snapshot expires findings")):
    """The settings file as read, its recorded expiry and, if asked, its findings."""

    __slots__ = ()
    # snapshot: Snapshot
    # expires: date | None
    # findings: list[Finding]; empty when not validated

    @property
    def values(self) -> dict[str, str | None]:
        return {key: self.snapshot.doc.value(key) for key in KEYS}


def inspect(paths: Paths, today: date | None = None, validate: bool = True) -> Inspection:
    return _inspected(paths, settings.read(paths.settings), today, validate)


def _inspected(paths: Paths, snapshot: Snapshot, today: date | None = None,
               validate: bool = True) -> Inspection:
    """The findings for one snapshot of the file (as read by ``inspect`` or under the lock)."""
    expires = state.load_expiry(paths.state_dir, snapshot.doc.value(SECRET))
    findings = []
    if validate:
        if snapshot.exists:
            # bash, not the scanner, has the last word on whether the file parses; it costs
            # a process (~3 ms), so `show` (validate=False) relies on the scanner alone.
            snapshot = snapshot._replace(doc=_as_bash_reads(snapshot.doc))
        findings = validation.validate(snapshot.doc, mode=snapshot.mode, uid=snapshot.uid,
                                       nlink=snapshot.nlink, expires=expires, today=today)
    return Inspection(snapshot, expires, findings)


def _as_bash_reads(doc: shellfile.Document) -> shellfile.Document:
    from . import bashcheck

    problem = bashcheck.check(doc.text)
    if problem is None:
        return doc._replace(syntax_error=None)  # the scanner's records stay: conservative
    line = problem.line or doc.text.count("\n") + 1
    return shellfile.with_bash_error(doc, line, problem.message)


class CheckResult(namedtuple("CheckResult", "before after repaired values")):
    """Findings before and after `check --fix`, what it repaired, and the pair it checked."""

    __slots__ = ()
    # before: Inspection; with fix, as validated again under the write lock
    # after: Inspection
    # repaired: list[Finding]
    # values: dict[str, str | None]; with fix, the entries exactly as validated and written
    #   under the lock (``after`` is read again once the lock is released)


def check(paths: Paths, fix: bool = False, today: date | None = None,
          refuse: Callable[[Inspection], None] | None = None) -> CheckResult:
    """Validate; with ``fix``, apply every repairable finding first (rewrite, mode, owner).

    With ``fix`` the file is validated under the write lock, from the very
    snapshot the repair rewrites, so what is written is exactly what was checked
    (git's lockfile). ``refuse(inspection)`` runs there and may raise to stop
    before anything is written. bash reads the file once for that check (and
    once more, for the report, only when something was repaired).
    """
    if not fix:
        before = inspect(paths, today)
        return CheckResult(before, before, [], before.values)
    locked: list[tuple[Inspection, dict[str, str | None]]] = []

    def canonical(snapshot: Snapshot) -> str:
        current = _inspected(paths, snapshot, today)
        if refuse is not None:
            refuse(current)
        if not any(f.repairable for f in current.findings):
            text = snapshot.doc.text  # nothing to repair: nothing is written
        else:
            text = shellfile.rewrite(snapshot.doc, validation.canonical_values(snapshot.doc))
        written = shellfile.parse(text, KEYS, paths.settings)
        locked.append((current, {key: written.value(key) for key in KEYS}))
        return text

    done = settings.update(paths.settings, canonical, state_dir=paths.state_dir,
                           fix_permissions=True)
    before, values = locked[-1]
    if not (done.written or done.permissions_fixed):
        return CheckResult(before, before, [], values)
    after = inspect(paths, today)
    still = {(f.code, f.key) for f in after.findings}
    repaired = [f for f in before.findings if f.repairable and (f.code, f.key) not in still]
    return CheckResult(before, after, repaired, values)

def _lines(doc: shellfile.Document, key: str) -> list[str]:
    return [doc.text[e.start:e.end] for e in doc.entries_for(key)]


class SetResult(namedtuple("SetResult", "path written changes findings client_id "
                                        "verification backup expiry_recorded expiry_cleared")):
    """What `set` did, for the report."""

    __slots__ = ()
    # path: str
    # written: bool
    # changes: dict[str, str]; key -> "added" | "changed" | "unchanged"
    # findings: list[Finding]; of the file as written (warnings, or errors under --force)
    # client_id: str | None; as written, for the report
    # verification: object; verify.Result when asked for, else None
    # backup: bool; a previous version was kept as .bak
    # expiry_recorded: date | None
    # expiry_cleared: bool; the old secret's expiry was dropped


class _Planned(namedtuple("_Planned",
                          "doc findings changes secret_changed verification expiry")):
    """What `set` will write, worked out under the lock."""

    __slots__ = ()
    # doc: shellfile.Document; the text as written, parsed
    # findings: list[Finding]
    # changes: dict[str, str]
    # secret_changed: bool
    # verification: object
    # expiry: date | None; the expiry that applies to the secret as written


def _as_written(path: str, done: _Planned, today: date | None) -> list[Finding]:
    """The findings `check` would now print: the text as written, with the file's mode and
    owner as they are after the write (a write leaves 0600 and keeps the owner)."""
    try:
        st = os.lstat(path)
    except OSError:
        return done.findings
    return validation.validate(done.doc, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                               nlink=st.st_nlink, expires=done.expiry, today=today)


def set_entries(paths: Paths, *, client_id: str | None = None, secret: str | None = None,
                expires: date | None = None, force: bool = False,
                today: date | None = None,
                verify: Callable[[str, str], object] | None = None) -> SetResult:
    """Set what is given; our lines are rewritten canonical. Refuses on errors unless ``force``.

    ``verify(client_id, secret)`` (online verification) runs on the pair as it
    will be written, after the offline checks pass and before the write, under
    the lock, so that what was verified is what is written.
    """
    for name, given in (("client ID", client_id), ("secret", secret)):
        if given is not None and ("\n" in given or "\0" in given):
            # Not even --force: a line break would split our line and the file
            # could no longer be read back.
            raise OnedeskError(f"the {name} contains a line break or NUL byte; "
                               f"give only the value, on one line")
    planned: list[_Planned] = []

    def edit(snapshot: Snapshot) -> str:
        doc = snapshot.doc
        values = validation.canonical_values(doc)
        if client_id is not None:
            values[CLIENT_ID] = validation.normalize_client_id(client_id)
        if secret is not None:
            values[SECRET] = secret
        new_text = shellfile.rewrite(doc, values)
        new_doc = shellfile.parse(new_text, KEYS, paths.settings)
        new_secret = new_doc.value(SECRET)
        secret_changed = new_secret != doc.value(SECRET)
        if expires is not None and not new_secret:
            raise OnedeskError(f"{paths.settings}: {SECRET} is not set, so there is no secret "
                               f"to record an expiry for; give the secret too")
        expiry = expires
        if expiry is None and not secret_changed:
            expiry = state.load_expiry(paths.state_dir, new_secret)
        # The text only: the file's mode and owner as written are reported after the write
        # (settings.update has refused a hard-linked file before calling this).
        findings = validation.validate(new_doc, expires=expiry, today=today)
        if validation.errors(findings) and not force:
            raise Refused(paths.settings, findings)
        checked = None
        if verify is not None:
            pair = (new_doc.value(CLIENT_ID), new_secret)
            if not all(pair):
                raise OnedeskError(f"{paths.settings}: nothing to verify: both {CLIENT_ID} and "
                                   f"{SECRET} are needed")
            checked = verify(*pair)
            if checked.status != "valid" and not force:
                raise VerificationFailed(paths.settings, checked)
        changes = {
            key: ("added" if doc.last(key) is None else
                  "unchanged" if _lines(doc, key) == _lines(new_doc, key) else "changed")
            for key, given in ((CLIENT_ID, client_id), (SECRET, secret)) if given is not None
        }
        planned.append(_Planned(new_doc, findings, changes, secret_changed, checked, expiry))
        return new_text

    # One lock around the file and its expiry record: no other writer sees one without the
    # other (the lock is reentrant: settings.update and state take it again).
    with state.locked(paths.state_dir):
        update = settings.update(paths.settings, edit, state_dir=paths.state_dir)
        done = planned[-1]
        if expires is not None:
            state.save_expiry(paths.state_dir, done.doc.value(SECRET), expires)
        elif done.secret_changed:
            state.clear_expiry(paths.state_dir)  # it belonged to the old secret
        findings = _as_written(paths.settings, done, today)
    return SetResult(paths.settings, update.written, done.changes, findings,
                     done.doc.value(CLIENT_ID), done.verification,
                     update.written and update.before.exists,
                     expires, expires is None and done.secret_changed)


def unset_entries(paths: Paths) -> bool:
    """Remove both entries. Returns whether the file changed."""
    def edit(snapshot: Snapshot) -> str:
        return shellfile.rewrite(snapshot.doc, {key: None for key in KEYS})

    if not settings.read(paths.settings).exists:
        return False
    with state.locked(paths.state_dir):
        written = settings.update(paths.settings, edit, state_dir=paths.state_dir).written
        if written:
            state.clear_expiry(paths.state_dir)
    return written
