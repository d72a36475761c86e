"""What the commands do, over the settings file and the tool's state (no click here).

Each command's result is a record that carries its own JSON (``as_dict``) and its
own report (``lines``); a command of the CLI is one call here and one print.
Every record of a command that may change something has ``changed`` and, in its
JSON, the fields of `show --json` as they are afterwards.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections import namedtuple  # not typing.NamedTuple: 4-20 ms more for the dnf hooks
from collections.abc import Callable
from datetime import date

from . import CLIENT_ID, KEYS, SECRET, settings, shellfile, state, validation
from .errors import OnedeskError, Refused, UnreadableRecord, VerificationFailed
from .paths import Paths
from .settings import Edit, Snapshot
from .trust import printable
from .validation import Finding


def mask(secret: str) -> str:
    """What may be shown of a secret: the 3-character hint Azure itself shows."""
    hint = validation.secret_hint(secret)
    return hint + "…" if len(secret) > len(hint) else "…"


NEXT_STEP = ("Next: reinstall the OneDesk packages so their install scripts apply the change:\n"
             "  onedesk-azuread apply        (the vendor's dnf remove + dnf install, done safely)")
NOT_RECORDED = "not recorded (onedesk-azuread set --expires YYYY-MM-DD)"
PRESENT_UNSUPPORTED = "present, but not a plain assignment (run: onedesk-azuread check)"
PRESENT_NOT_LITERAL = "present, but not a literal value (run: onedesk-azuread check)"
# An expiry record that is there but cannot be read (garbage, a newer version's, not a
# private file of ours) is a finding, not an exception: `check` and `status` report it
# as an error, `show` shows the entries all the same, and a package transaction only
# warns (hook.preflight), as for a passed expiry: the entries themselves are not wrong.
MSG_EXPIRY_UNREADABLE = "the secret's recorded expiry cannot be read: {error}"
SHOWN_EXPIRY_UNREADABLE = "unknown: {error}"
EXPIRY_ONLY = "the entries are correct, but the tool's record of the secret's expiry is not"


def owner_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Inspection(namedtuple("Inspection", "snapshot expires findings expiry_error",
                             defaults=(None,))):
    """The settings file as read, its recorded expiry and, if asked, its findings.

    `show` is this record: ``as_dict`` is `show --json`, ``lines`` its text.
    """

    __slots__ = ()
    # snapshot: Snapshot
    # expires: date | None
    # findings: list[Finding]; empty when not validated
    # expiry_error: str | None; why the expiry record cannot be read (then expires is None)

    @property
    def values(self) -> dict[str, str | None]:
        return {key: self.snapshot.doc.value(key) for key in KEYS}

    def _absent(self, key: str) -> str:
        """What `show` says of a key without a readable value."""
        doc = self.snapshot.doc
        if doc.unsupported_for(key):
            return PRESENT_UNSUPPORTED
        if doc.entries_for(key):
            return PRESENT_NOT_LITERAL
        return "not set"

    def as_dict(self, reveal: bool = False) -> dict:
        snap = self.snapshot
        secret = self.values[SECRET]
        return {
            "file": snap.path,
            "exists": snap.exists,
            "mode": f"{snap.mode:04o}" if snap.mode is not None else None,
            "owner": owner_name(snap.uid),
            "client_id": self.values[CLIENT_ID],
            "secret": secret if (reveal or secret is None) else mask(secret),
            "secret_revealed": bool(reveal and secret is not None),
            "expires": self.expires.isoformat() if self.expires else None,
            "expiry_error": self.expiry_error,
        }

    def lines(self, reveal: bool = False, today: date | None = None) -> list[str]:
        snap = self.snapshot
        record = self.as_dict(reveal)
        file_line = snap.path if snap.exists else f"{snap.path} (does not exist)"
        if snap.exists:
            file_line += f" (mode {record['mode']}, owner {record['owner']})"
        expires = NOT_RECORDED
        if self.expiry_error:
            expires = SHOWN_EXPIRY_UNREADABLE.format(error=self.expiry_error)
        elif self.expires:
            days = (self.expires - (today or date.today())).days
            left = f"in {days} days" if days >= 0 else "EXPIRED"
            expires = f"{self.expires.isoformat()} ({left})"
        client_id = record["client_id"]
        if client_id is None:
            client_id = self._absent(CLIENT_ID)
        secret = record["secret"]
        if secret is None:
            secret = self._absent(SECRET)
        elif not reveal:
            secret += " (masked; --reveal shows it)"
        # The values as the file holds them, but never an escape sequence for the terminal.
        return [f"file:         {file_line}", f"{CLIENT_ID}:  {printable(client_id)}",
                f"{SECRET}:  {printable(secret)}", f"expires:      {expires}"]


def show(paths: Paths) -> Inspection:
    """`show`: the scanner's view alone (no bash, no validation: `show` stays as quick as a
    bare click program; `check` asks bash)."""
    return inspect(paths, validate=False)


def inspect(paths: Paths, today: date | None = None, validate: bool = True) -> Inspection:
    return _inspected(paths, settings.read(paths.settings), today, validate)


def _inspected(paths: Paths, snapshot: Snapshot, today: date | None = None,
               validate: bool = True) -> Inspection:
    """The findings for one snapshot of the file (as read by ``inspect`` or under the lock)."""
    try:
        expires, unreadable = state.load_expiry(paths.state_dir, snapshot.doc.value(SECRET)), None
    except UnreadableRecord as exc:  # its directory's problems stay errors: StateError
        expires, unreadable = None, str(exc)
    findings = []
    if validate:
        if snapshot.exists:
            # bash, not the scanner, has the last word on whether the file parses; it costs
            # a process (~3 ms), so `show` (validate=False) relies on the scanner alone.
            snapshot = snapshot._replace(doc=_as_bash_reads(snapshot.doc))
        facts = validation.FileFacts(snapshot.mode, snapshot.uid, snapshot.nlink, snapshot.acl)
        findings = validation.validate(snapshot.doc, facts, expires=expires, today=today)
        if unreadable:
            findings = validation.errors(findings) + [expiry_unreadable(unreadable)] + [
                f for f in findings if f.severity != validation.ERROR]
    return Inspection(snapshot, expires, findings, unreadable)


def expiry_unreadable(error: str) -> Finding:
    """The finding for an expiry record that cannot be read (``error``: why, and the fix)."""
    return Finding(validation.EXPIRY_UNREADABLE, validation.ERROR, None,
                   MSG_EXPIRY_UNREADABLE.format(error=error), False)


def _as_bash_reads(doc: shellfile.Document) -> shellfile.Document:
    # Only here: bashcheck and subprocess cost `show`, which never runs bash, 4.4 ms
    # (make bench, a fresh venv).
    from . import bashcheck

    problem = bashcheck.check(doc.text)
    if problem is None:
        return doc._replace(syntax_error=None)  # the scanner's records stay: conservative
    line = problem.line or doc.text.count("\n") + 1
    return shellfile.with_bash_error(doc, line, problem.message)


class CheckResult(namedtuple("CheckResult", "inspection repaired values online changed fixing")):
    """What `check` found (and, with ``fix``, repaired), and the online answer if asked."""

    __slots__ = ()
    # inspection: Inspection; the file as it is now (read again after a repair)
    # repaired: list[Finding]; what the repair fixed
    # values: dict[str, str | None]; with fix, the entries exactly as validated and
    #   written under the lock (``inspection`` is read again once the lock is released)
    # online: verify.Result | None; when asked: the answer, or verify.SKIPPED
    # changed: bool; the repair changed the file (content, mode or owner)
    # fixing: bool; `check --fix`

    @property
    def path(self) -> str:
        return self.inspection.snapshot.path

    @property
    def errors(self) -> list[Finding]:
        return validation.errors(self.inspection.findings)

    @property
    def exit_code(self) -> int:
        code = 1 if self.errors else 0
        if self.online is not None:
            code = max(code, self.online.exit_code)
        return code

    def as_dict(self) -> dict:
        findings = self.inspection.findings
        record = {
            "file": self.path,
            "ok": self.exit_code == 0,
            "errors": len(self.errors),
            "warnings": len(findings) - len(self.errors),
            "repaired": [f.code for f in self.repaired],
            "findings": [f.as_dict() for f in findings],
        }
        if self.fixing:
            record = {**self.inspection.as_dict(), **record, "changed": self.changed}
        if self.online is not None:
            record["online"] = self.online.as_dict()
        return record

    def report(self) -> list[str]:
        """The findings: the text `check` prints on stdout."""
        return [finding.describe(self.path) for finding in self.inspection.findings]

    def lines(self) -> list[str]:
        """The summary `check` says on stderr."""
        said = [f"repaired: {f.code}" + (f" ({f.key})" if f.key else "") for f in self.repaired]
        findings = self.inspection.findings
        if self.errors and all(f.code == validation.EXPIRY_UNREADABLE for f in self.errors):
            said.append(f"{self.path}: {len(self.errors)} error(s): {EXPIRY_ONLY}")
        elif self.errors:
            said.append(f"{self.path}: {len(self.errors)} error(s): OneDesk would not get "
                        f"correct Azure AD values")
        else:
            said.append(f"{self.path}: OK" + (f" ({len(findings)} warning(s))" if findings else ""))
        if self.online is not None:
            said.append(online_line(self.online))
        return said


def online_line(result) -> str:
    """One verify.Result as `check --online` and `set --verify` say it."""
    text = f"online: {result.status}: {result.message}"
    if result.correlation_id:
        text += f" (correlation id {result.correlation_id})"
    return text


class _Repair(namedtuple("_Repair", "text inspection values")):
    """What `check --fix` worked out under the lock: the text and the pair it validated."""

    __slots__ = ()


def check(paths: Paths, fix: bool = False, today: date | None = None,
          refuse: Callable[[Inspection], None] | None = None,
          online: Callable[[str, str], object] | None = None) -> CheckResult:
    """Validate; with ``fix``, apply every repairable finding first (rewrite, mode, owner).

    With ``fix`` the file is validated under the write lock, from the very
    snapshot the repair rewrites, so what is written is exactly what was checked
    (git's lockfile). ``refuse(inspection)`` runs there and may raise to stop
    before anything is written. bash reads the file once for that check (and
    once more, for the report, only when something was repaired).

    ``online(client_id, secret)`` (a verify.Result) is asked only when the
    offline check found no errors: otherwise its result is verify.SKIPPED, since
    the errors are the thing to fix first and the network would add nothing.
    """
    if not fix:
        now = inspect(paths, today)
        return _with_online(CheckResult(now, [], now.values, None, False, False), online)

    def repair(snapshot: Snapshot) -> _Repair:
        current = _inspected(paths, snapshot, today)
        if refuse is not None:
            refuse(current)
        if not any(f.repairable for f in current.findings):
            text = snapshot.doc.text  # nothing to repair: nothing is written
        else:
            text = shellfile.rewrite(snapshot.doc, validation.canonical_values(snapshot.doc))
        written = shellfile.parse(text, KEYS, paths.settings)
        return _Repair(text, current, {key: written.value(key) for key in KEYS})

    done = settings.update(paths.settings, repair, state_dir=paths.state_dir,
                           fix_permissions=True)
    before, values = done.edit.inspection, done.edit.values
    changed = done.written or done.permissions_fixed
    if not changed:
        return _with_online(CheckResult(before, [], values, None, False, True), online)
    after = inspect(paths, today)
    still = {(f.code, f.key) for f in after.findings}
    repaired = [f for f in before.findings if f.repairable and (f.code, f.key) not in still]
    return _with_online(CheckResult(after, repaired, values, None, True, True), online)


def _with_online(result: CheckResult, online) -> CheckResult:
    if online is None:
        return result
    # Only here: verify and urllib.parse cost `show` 5 ms (make bench, a fresh venv).
    from . import verify

    if result.errors:
        answer = verify.Result(verify.SKIPPED, verify.NOT_ASKED)
    else:
        answer = online(result.values[CLIENT_ID], result.values[SECRET])
    return result._replace(online=answer)


def _lines(doc: shellfile.Document, key: str) -> list[str]:
    return [doc.text[e.start:e.end] for e in doc.entries_for(key)]


class SetPlan(namedtuple("SetPlan", "text doc changes findings secret_changed expiry "
                                    "expiry_changed verification", defaults=(None,))):
    """What `set` will write: the planner's answer, worked out under the lock."""

    __slots__ = ()
    # text: str; the new file
    # doc: shellfile.Document; ``text`` parsed
    # changes: dict[str, str]; key given -> "added" | "changed" | "unchanged" (the diff)
    # findings: list[Finding]; of the text (the file's mode and owner come after the write)
    # secret_changed: bool
    # expiry: date | None; the expiry that applies to the secret as written
    # expiry_changed: bool; it is not the one that applied before
    # verification: verify.Result | None; set by `set_entries` when asked to verify


class Given(namedtuple("Given", "client_id secret expires", defaults=(None, None, None))):
    """What `set` is given to write (None: not given, kept as it is)."""

    __slots__ = ()
    # client_id: str | None
    # secret: str | None
    # expires: date | None; the secret's last day, to record


def plan_set(doc: shellfile.Document, given: Given, *, kept_expiry: date | None = None,
             today: date | None = None) -> SetPlan:
    """Pure: the file with the given values written canonical, its diff and its findings.

    ``kept_expiry``: the expiry recorded for the secret the file holds now; it still
    applies when the secret does not change and no new expiry is given.
    """
    client_id, secret, expires = given
    values = validation.canonical_values(doc)
    if client_id is not None:
        values[CLIENT_ID] = validation.normalize_client_id(client_id)
    if secret is not None:
        values[SECRET] = secret
    text = shellfile.rewrite(doc, values)
    new = shellfile.parse(text, KEYS, doc.path)
    secret_changed = new.value(SECRET) != doc.value(SECRET)
    expiry = expires if expires is not None or secret_changed else kept_expiry
    changes = {
        key: ("added" if doc.last(key) is None else
              "unchanged" if _lines(doc, key) == _lines(new, key) else "changed")
        for key, given in ((CLIENT_ID, client_id), (SECRET, secret)) if given is not None
    }
    findings = validation.validate(new, expires=expiry, today=today)
    return SetPlan(text, new, changes, findings, secret_changed, expiry, expiry != kept_expiry)


class SetResult(namedtuple("SetResult", "path written changes findings client_id "
                                        "verification backup expiry_recorded expiry_cleared "
                                        "expiry_changed shown")):
    """What `set` did, for the report."""

    __slots__ = ()
    # path: str
    # written: bool
    # changes: dict[str, str]; key -> "added" | "changed" | "unchanged"
    # findings: list[Finding]; of the file as written (warnings, or errors under --force)
    # client_id: str | None; as written, for the report
    # verification: verify.Result | None; when asked for
    # backup: bool; a previous version was kept as .bak
    # expiry_recorded: date | None
    # expiry_cleared: bool; the old secret's expiry was dropped
    # expiry_changed: bool; the recorded expiry is not what it was
    # shown: Inspection; the file as `show` sees it now

    @property
    def changed(self) -> bool:
        return self.written or self.expiry_changed

    def as_dict(self) -> dict:
        return {**self.shown.as_dict(), "changed": self.changed, "written": self.written,
                "changes": self.changes, "backup": f"{self.path}.bak" if self.backup else None,
                "expiry_recorded": (self.expiry_recorded.isoformat()
                                    if self.expiry_recorded else None),
                "findings": [f.as_dict() for f in self.findings],
                "verification": self.verification.as_dict() if self.verification else None}

    def lines(self) -> list[str]:
        said = [finding.describe(self.path) for finding in self.findings]
        if self.verification is not None:
            said.append(online_line(self.verification))
        shown = self.shown.as_dict()
        for key, change in self.changes.items():
            value = shown["secret"] if key == SECRET else self.client_id
            said.append(f"{key}: {change} ({printable(value)})" if change != "unchanged"
                        else f"{key}: unchanged")
        if self.expiry_recorded:
            said.append(f"secret expiry recorded: {self.expiry_recorded.isoformat()}")
        elif self.expiry_cleared:
            said.append("no expiry recorded for the new secret "
                        "(record it with --expires YYYY-MM-DD)")
        if self.written:
            kept = f"; previous version kept as {self.path}.bak" if self.backup else ""
            said += [f"{self.path} written{kept}", NEXT_STEP]
        else:
            said.append(f"{self.path} unchanged: it already holds these values")
        return said


def _as_written(path: str, done: SetPlan, today: date | None) -> list[Finding]:
    """The findings `check` would now print: the text as written, with the file's mode and
    owner as they are after the write (a write leaves 0600 and keeps the owner)."""
    try:
        st = os.lstat(path)
    except OSError:
        return done.findings
    facts = validation.FileFacts(stat.S_IMODE(st.st_mode), st.st_uid, st.st_nlink)
    return validation.validate(done.doc, facts, expires=done.expiry, today=today)


def _one_line(client_id: str | None, secret: str | None) -> None:
    for name, given in (("client ID", client_id), ("secret", secret)):
        if given is not None and ("\n" in given or "\0" in given):
            # Not even --force: a line break would split our line and the file
            # could no longer be read back.
            raise OnedeskError(f"the {name} contains a line break or NUL byte; "
                               f"give only the value, on one line")


def _approved(path: str, plan: SetPlan, force: bool, verify) -> SetPlan:
    """Refuse a plan with errors (unless ``force``); verify the pair it writes if asked."""
    if plan.expiry is not None and not plan.doc.value(SECRET):
        raise OnedeskError(f"{path}: {SECRET} is not set, so there is no secret to record an "
                           f"expiry for; give the secret too")
    if validation.errors(plan.findings) and not force:
        raise Refused(path, plan.findings)
    if verify is None:
        return plan
    pair = (plan.doc.value(CLIENT_ID), plan.doc.value(SECRET))
    if not all(pair):
        raise OnedeskError(f"{path}: nothing to verify: both {CLIENT_ID} and {SECRET} are needed")
    checked = verify(*pair)
    if checked.status != "valid" and not force:
        raise VerificationFailed(path, checked)
    return plan._replace(verification=checked)


def set_entries(paths: Paths, given: Given, *, force: bool = False, today: date | None = None,
                verify: Callable[[str, str], object] | None = None) -> SetResult:
    """Set what is given; our lines are rewritten canonical. Refuses on errors unless ``force``.

    The plan (``plan_set``) is made under the lock from the snapshot it rewrites.
    ``verify(client_id, secret)`` (online verification) runs on the pair as it will
    be written, after the offline checks pass and before the write, under the lock,
    so that what was verified is what is written.
    """
    _one_line(given.client_id, given.secret)
    expires = given.expires

    def planned(snapshot: Snapshot) -> SetPlan:
        kept = state.load_expiry(paths.state_dir, snapshot.doc.value(SECRET))
        plan = plan_set(snapshot.doc, given, kept_expiry=kept, today=today)
        return _approved(paths.settings, plan, force, verify)

    # One lock around the file and its expiry record: no other writer sees one without the
    # other (the lock is reentrant: settings.update and state take it again).
    with state.locked(paths.state_dir):
        # The text only is validated in the plan: settings.update has refused a hard-linked
        # file before planning, and the file's mode and owner are reported after the write.
        update = settings.update(paths.settings, planned, state_dir=paths.state_dir)
        done = update.edit
        if expires is not None:
            state.save_expiry(paths.state_dir, done.doc.value(SECRET), expires)
        elif done.secret_changed:
            state.clear_expiry(paths.state_dir)  # it belonged to the old secret
        findings = _as_written(paths.settings, done, today)
    return SetResult(paths.settings, update.written, done.changes, findings,
                     done.doc.value(CLIENT_ID), done.verification,
                     update.written and update.before.exists,
                     expires, expires is None and done.secret_changed, done.expiry_changed,
                     show(paths))


class UnsetResult(namedtuple("UnsetResult", "path changed shown")):
    """What `unset` did."""

    __slots__ = ()
    # path: str
    # changed: bool; the entries were removed (the previous file is the .bak)
    # shown: Inspection; the file as `show` sees it now

    def as_dict(self) -> dict:
        return {**self.shown.as_dict(), "changed": self.changed,
                "backup": f"{self.path}.bak" if self.changed else None}

    def lines(self) -> list[str]:
        if not self.changed:
            return [f"{self.path}: no Azure AD entries to remove"]
        return [f"{CLIENT_ID} and {SECRET} removed from {self.path}; "
                f"previous version kept as {self.path}.bak", NEXT_STEP]


def unset_entries(paths: Paths) -> UnsetResult:
    """Remove both entries."""
    def removed(snapshot: Snapshot) -> Edit:
        return Edit(shellfile.rewrite(snapshot.doc, {key: None for key in KEYS}))

    written = False
    if settings.read(paths.settings).exists:
        with state.locked(paths.state_dir):
            written = settings.update(paths.settings, removed, state_dir=paths.state_dir).written
            if written:
                state.clear_expiry(paths.state_dir)
    return UnsetResult(paths.settings, written, show(paths))
