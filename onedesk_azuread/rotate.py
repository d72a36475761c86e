"""`rotate`: replace the client secret in one step, with the Azure CLI of a logged-in admin.

The order makes every failure safe: a new secret is added next to the old one
(`--append`), the server is changed only once Azure AD accepts the new pair, the
packages are applied and `status` is in sync before the old secret may be
retired. Whatever fails, the old secret still works, the settings file holds a
consistent pair, and the error says what state Azure and the server are in and
the one command that finishes the job.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import NamedTuple

from . import (
    CLIENT_ID,
    KEYS,
    SECRET,
    apply,
    azcli,
    fsutil,
    operations,
    rotation,
    shellfile,
    state,
    status,
    validation,
)
from . import journal as journal_module
from .azcli import Credential
from .errors import AzError, OnedeskError, RotationFailed
from .paths import Paths

DEFAULT_WAIT = 120.0  # new secrets usually work within a minute; Microsoft allows for more
DEFAULT_YEARS = 1  # az's own default; the portal's longest is 2
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 10.0
ROTATE_LOCK = rotation.LOCK_FILE
# Azure AD's answer while a new secret has not reached every replica: "invalid secret".
NOT_YET = 7000215

# Progress, and the dry run's plan.
ADDING = "adding a new secret to app {cid} (az ad app credential reset --append)"
WAITING = ("new secret {key} (hint {hint}…, ends {end}); waiting up to {wait:g} s for Azure AD "
           "to accept it")
ACCEPTED = "Azure AD accepts the new secret (after {waited:.1f} s)"
WRITTEN = f"{{path}}: {SECRET} replaced, expiry {{end}} recorded"
RETIRED = "retired the old secret {old}"
KEEPING_OLD = "the old secret will not be retired: {why}"
DONE = "done: rotated to the new secret {key} (expires {end}){retired}"
DONE_RETIRED = "; the old secret {old} was retired"
PLAN_RESET = "add a new secret '{name}' to app {cid} ({length}), keeping the others: {command}"
ENDING_ON = "ending at 00:00 UTC on {end}: its last day is {last}"
LASTING = "valid {years} year(s)"
PLAN_WAIT = "wait up to {wait:g} s until Azure AD issues a token with it"
PLAN_WRITE = "write it to {path} and record its expiry"
PLAN_APPLY = ("reinstall the OneDesk packages with it (onedesk-azuread apply) and confirm "
              "status is in sync")
PLAN_RETIRE = "retire the old secret: {delete}"
PLAN_KEEP = "keep the old secret: {why}"
DRY_RUN_DONE = "dry run: nothing was changed"

NO_AZ = ("{why}. Rotate from a workstation with the Azure CLI instead (the secret goes through "
         "the pipe only, never on a command line or a screen): {command} | ssh root@{host} "
         "onedesk-azuread set --secret-stdin --expires {last}; then on this server: "
         "onedesk-azuread apply (it stops working at 00:00 UTC on {end}: its last day is {last})")
NO_CLIENT_ID = f"{{path}}: cannot rotate: {CLIENT_ID} is not set; set it first: " \
               f"onedesk-azuread set --client-id ID"
PAST_END = "--end-date {end} is not in the future; give a later date"
NOTHING_CHANGED = "nothing was changed in Azure or on this server"
LIST_FAILED = "{why}; " + NOTHING_CHANGED
RESET_FAILED = "{why}; " + NOTHING_CHANGED + "; fix that and run onedesk-azuread rotate again"
RESET_FAILED_ADDED = ("{why}, but Azure now has a new secret {key} that nothing uses; nothing "
                      "was written on this server and the old secret still works; remove the "
                      "unused one with: {delete}")
BAD_SECRET = ("the secret az created does not look like a client secret ({why}); nothing was "
              "written on this server and the old secret still works; remove the unused one "
              "with: {delete}")
UNLISTED = ("Azure has a new secret (hint {hint}) that nothing uses, but its key id could not "
            "be read ({why}); nothing was written on this server and the old secret still "
            "works; remove it: find its keyId by the hint {hint} in `az ad app credential list "
            "--id {cid}` and run az ad app credential delete --id {cid} --key-id KEYID")
NEVER_ACCEPTED = ("Azure AD did not accept the new secret {key} within {waited:.0f} s ({last}); "
                  "nothing was written on this server and the old secret still works; remove "
                  "the unused one with: {delete}")
NOT_WRITTEN = ("Azure AD accepts the new secret {key}, but it could not be written ({why}); "
               "the server still uses the old secret, which still works; remove the unused one "
               "with: {delete}")
NOT_APPLIED = ("the new secret {key} is written to {path} (expiry {end} recorded), but the "
               "packages were not applied ({why}); OneDesk still uses the old secret, which "
               "still works and was not retired; finish with: {finish}")
FINISH_RETIRES = "{command} (it applies, then retires the old secret {old})"
NOT_RETIRED = ("rotated: the new secret {key} is in use{applied}, but the old secret {old} was "
               "NOT retired ({why}); retire it with: {delete}")
CANNOT_RETIRE = ("rotated: the new secret {key} is in use{applied}, but the old secret was NOT "
                 "retired: {why}; find the old one in `az ad app credential list --id {cid}` "
                 "and retire it with: az ad app credential delete --id {cid} --key-id KEYID")
NOT_LISTED = "it is not in the list"
NO_END = "it has no endDateTime"
NOT_IN_SYNC = "status is not in sync"
INTERRUPTED = ("interrupted before the new secret was written; {state}")
INTERRUPTED_UNUSED = ("Azure has a new secret {key} that nothing uses; nothing was written on "
                      "this server and the old secret still works; remove the unused one with: "
                      "{delete}")
STILL_REFUSED = "it still answers AADSTS7000215, invalid client secret"
AMBIGUOUS_NONE = "no secret of app {cid} has the hint {hint}{ending}"
AMBIGUOUS_MANY = "{count} secrets of app {cid} have the hint {hint}{ending} ({keys})"
ENDING = " and ends on {end} (the recorded expiry)"
RECORDED_GONE = ("the key id this server recorded for its secret ({key}) is not among the "
                 "secrets of app {cid} with the hint {hint}")
RECORDED_OTHER_DATE = ("the recorded expiry {end} is not the last day of the key this server "
                       "recorded for its secret ({key}, last day {last}){other}")
OTHER_KEY_ENDS = "; it is the last day of {keys}"
NOT_TIED = ("the old secret {key} ('{name}') is not tied to this server ({host}): neither "
            "recorded by its rotate nor named after it, so another server may use it; if none "
            "does, name it: --retire-key {key}")
RETIRE_KEY_UNKNOWN = "--retire-key {key} is not a secret of app {cid}"
RETIRE_KEY_OTHER = ("--retire-key {key} is not the current secret (its hint is {its}, the "
                    "current secret's is {hint})")
NOT_PROVEN = ("Azure AD does not accept the current pair ({why}), so no key of app {cid} is "
              "proven to be this server's")
# An unfinished rotation, found by the next one (rotation.Journal.describe says the rest).
UNFINISHED = "cannot rotate: {what}"
FORGOTTEN = ("the rotation started {started} left nothing behind (its new secret is not in "
             "Azure and not in use here): its journal is forgotten")
FORGETTABLE = ("the rotation started {started} left nothing behind (its new secret is not in "
               "Azure and not in use here): its journal would be forgotten")
NO_UNFINISHED = "no unfinished rotation: nothing to finish"
UNDONE = "undone: deleted the unused new secret {key}; the rotation started {started} is forgotten"
UNDONE_NOTHING = ("nothing to undo: Azure no longer holds the new secret of the rotation started "
                  "{started}; it is forgotten")
UNDO_MANY = ("cannot undo the rotation started {started}: Azure holds {count} secrets named "
             "'{name}' that it may have added ({keys}); delete the unused one by hand with: "
             "az ad app credential delete --id {cid} --key-id KEYID, then run: {command}")
FINISHED = ("finished: the rotation started {started} is complete (the new secret {key} is in "
            "use{retired})")
FINISH_NO_AZ = "{why}; rotate --finish needs it to read and change the app's secrets"
FINISHED_RETIRED = "; the old secret {old} was retired"
FINISHED_OLD_GONE = "; the old secret {old} was already gone"
UNTIED_FOUND = ("{why}; Azure has a new secret {keys} that this server cannot tie to itself "
                "(another server's rotation?): it was left alone")
APPLIED_NOTE = " and applied"
NO_APPLY_NOTE = (" in {path}, not applied yet (OneDesk still uses the old secret until: "
                 "{apply})")


class Rotated(NamedTuple):
    """What `rotate` did (or, with dry_run, would do), for the report."""

    path: str  # the settings file
    client_id: str
    old_key: str | None = None  # the current secret's keyId in Azure (None: not identified)
    new_key: str | None = None  # the new secret's keyId
    hint: str | None = None  # the new secret's first 3 characters (what Azure shows)
    expires: date | None = None  # the new secret's endDateTime's date, as recorded
    written: bool = False  # the settings file holds the new secret
    applied: bool = False  # the packages were installed again with it (status in sync)
    retired: bool = False  # the old secret was deleted in Azure
    waited: float = 0.0  # seconds until Azure AD accepted the new secret
    dry_run: bool = False
    note: str | None = None  # why the old secret was or would be kept
    shown: operations.Inspection | None = None  # the settings file as `show` sees it at the end
    finished: str | None = None  # what `rotate --finish` did with an unfinished rotation

    @property
    def changed(self) -> bool:
        return self.written or self.new_key is not None

    def explain(self) -> str:
        """The last line of a rotation that succeeded."""
        retired = DONE_RETIRED.format(old=self.old_key) if self.retired else ""
        return DONE.format(key=self.new_key, end=self.expires.isoformat(), retired=retired)

    def lines(self) -> list[str]:
        """The report of a rotation that succeeded (a dry run has said its plan already)."""
        if self.dry_run:
            return []
        if self.finished:
            return [self.finished]
        return [self.explain()] + ([] if self.applied else [operations.NEXT_STEP])

    def as_dict(self) -> dict:
        shown = self.shown.as_dict() if self.shown is not None else {}
        return {**shown, "changed": self.changed, "dry_run": self.dry_run, "file": self.path,
                "client_id": self.client_id, "old_key_id": self.old_key,
                "new_key_id": self.new_key, "secret_hint": self.hint,
                "expires": self.expires.isoformat() if self.expires else None,
                "written": self.written, "applied": self.applied, "retired": self.retired,
                "waited_seconds": round(self.waited, 1), "note": self.note,
                "finished": self.finished}


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


_MANGLED = re.compile(r"[^A-Za-z0-9.-]")  # as the registration script's `tr -c`


def server_name() -> str:
    """This server's name as a new secret's display name carries it: the kernel's node name
    (no DNS lookup: a rotation must not hang on the resolver), in [A-Za-z0-9.-]."""
    return _MANGLED.sub("-", os.uname().nodename).strip("-") or "localhost"


def display_name(today: date, host: str | None = None) -> str:
    """`onedesk-azuread HOST DATE`: in a fleet sharing one app, whose secret is whose."""
    return f"{azcli.DISPLAY_PREFIX} {host or server_name()} {today.isoformat()}"


def current_key(credentials: list[Credential], client_id: str, secret: str,
                expires: date | None, recorded_key: str | None = None
                ) -> tuple[Credential | None, str | None]:
    """The Azure entry of the secret in the file: exactly one key with its hint and, when
    this server recorded one, that key id; the recorded expiry must not contradict it.
    Two keys with its hint and no recorded key id, or none, is no proof: (None, why)."""
    hint = validation.secret_hint(secret)
    same = [c for c in credentials if c.hint == hint]
    if recorded_key is not None:
        mine = [c for c in same if c.key_id == recorded_key]
        if not mine:
            return None, RECORDED_GONE.format(key=recorded_key, cid=client_id, hint=hint)
        if expires is not None and not mine[0].ends_on(expires):
            others = [c.key_id for c in same if c is not mine[0] and c.ends_on(expires)]
            other = OTHER_KEY_ENDS.format(keys=", ".join(others)) if others else ""
            return None, RECORDED_OTHER_DATE.format(
                end=expires.isoformat(), key=recorded_key, other=other,
                last=mine[0].last_day.isoformat() if mine[0].last_day else "none")
        return mine[0], None
    ending = ENDING.format(end=expires.isoformat()) if expires else ""
    if len(same) > 1:
        return None, AMBIGUOUS_MANY.format(count=len(same), cid=client_id, hint=hint,
                                           ending="", keys=", ".join(c.key_id for c in same))
    if expires is not None:
        same = [c for c in same if c.ends_on(expires)]
    if not same:
        return None, AMBIGUOUS_NONE.format(cid=client_id, hint=hint, ending=ending)
    return same[0], None


def new_key(before: list[Credential], after: list[Credential],
            secret: str) -> Credential | None:
    """The secret az just added: not there before, with its hint, the newest start."""
    known = {c.key_id for c in before}
    hint = validation.secret_hint(secret)
    fresh = [c for c in after if c.key_id not in known and c.hint == hint]
    if not fresh:
        return None
    return max(fresh, key=lambda c: (c.start is not None, c.start or 0))


def _check_current(paths: Paths, today: date | None) -> tuple[str, str, date | None]:
    """The pair in the file, valid. A passed expiry does not stop a rotation: it is the reason
    for one."""
    info = operations.inspect(paths, today)
    client_id, secret = info.values[CLIENT_ID], info.values[SECRET]
    if not client_id:
        raise OnedeskError(NO_CLIENT_ID.format(path=paths.settings))
    errors = [f for f in validation.errors(info.findings) if f.code != validation.EXPIRED]
    if errors:
        raise operations.Refused(paths.settings, errors, operations.Refused.FIX_FIRST)
    return client_id, secret, info.expires


def _in_sync(paths: Paths) -> bool:
    return status.status(paths, unfinished_too=False).sync == state.IN_SYNC


def _left_behind(journal: rotation.Journal, listing: list[Credential]) -> list[Credential]:
    """What Azure holds of a journalled rotation's new secret: its key id, or (never read)
    the secrets with its display name that were not there before it."""
    if journal.key_id:
        return [c for c in listing if c.key_id == journal.key_id]
    known = set(journal.before)
    return [c for c in listing
            if c.key_id not in known and c.display_name == journal.display_name]


def _as_document(client_id: str, secret: str) -> shellfile.Document:
    """The new pair as the file will hold it, for the offline checks before the wait."""
    text = shellfile.rewrite(shellfile.parse("", KEYS, "-"), {CLIENT_ID: client_id, SECRET: secret})
    return shellfile.parse(text, KEYS, "-")


class Options(NamedTuple):
    """What the administrator asks of `rotate` (its command line's options)."""

    years: int | None = None  # the new secret's lifetime (None: az's default, DEFAULT_YEARS)
    end_date: date | None = None  # or the first day it no longer works
    retire_old: bool = False  # then retire the old secret, once it is proven this server's
    retire_key: str | None = None  # then retire this old key (the administrator vouches for it)
    apply_after: bool = True  # reinstall the packages with the new secret
    wait: float = DEFAULT_WAIT  # how long to wait for Azure AD to accept it, in seconds
    dry_run: bool = False  # say the plan, change nothing

    @property
    def retire(self) -> bool:
        return self.retire_old or self.retire_key is not None


class Clock(NamedTuple):
    """Time as `rotate` reads it (tests pass their own)."""

    today: date | None = None  # None: date.today()
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


def rotate(paths: Paths, options: Options | None = None, *,
           verify: Callable[[str, str], object] | None, say: Callable[[str], None],
           clock: Clock | None = None) -> Rotated:
    """The whole `rotate`; raises RotationFailed (with what was done) when a step fails.

    ``verify(client_id, secret)`` asks Azure AD (verify.verify with the tenant bound).
    """
    steps = Rotation(paths, options or Options(), verify, say, clock or Clock())
    return _shown(paths, steps.run)


def finish(paths: Paths, *, say: Callable[[str], None], today: date | None = None) -> Rotated:
    """`rotate --finish`: finish or undo an interrupted rotation (its journal)."""
    return _shown(paths, Rotation(paths, Options(), None, say, Clock(today)).finish)


def _shown(paths: Paths, run: Callable[[], Rotated]) -> Rotated:
    """``run``'s result, or its failure's, with the settings file as `show` sees it after."""
    try:
        done = run()
    except RotationFailed as exc:
        exc.result = exc.result._replace(shown=operations.show(paths))
        raise
    return done._replace(shown=operations.show(paths))


class Rotation:
    """One `rotate`, as its steps: prepare (read the pair, list the app's secrets, prove
    which is this server's), then plan (a dry run), or add_and_wait, write and
    apply_and_retire; or finish (`rotate --finish`). ``done`` is what was done so far: the
    report, and what a RotationFailed carries."""

    def __init__(self, paths: Paths, options: Options,
                 verify: Callable[[str, str], object] | None, say: Callable[[str], None],
                 clock: Clock):
        self.paths, self.options, self.verify, self.say = paths, options, verify, say
        self.today = clock.today or date.today()
        self.sleep, self.monotonic = clock.sleep, clock.monotonic
        self.host = server_name()
        self.name = display_name(self.today, self.host)  # the new secret's
        self.client_id = self.secret = None  # the pair in the file
        self.az: azcli.Az | None = None
        self.before: list[Credential] = []  # the app's secrets before this rotation
        self.journal: rotation.Journal | None = None
        self.done = Rotated(paths.settings, None, dry_run=options.dry_run)

    def run(self) -> Rotated:
        end_date = self.options.end_date
        if end_date is not None and end_date <= self.today:
            raise OnedeskError(PAST_END.format(end=end_date.isoformat()))
        if self.options.dry_run:
            self.prepare()
            return self.plan()
        return self._locked(self._rotate)

    def _rotate(self) -> Rotated:
        self.prepare()
        self.write(self.add_and_wait())
        return self.apply_and_retire()

    def _locked(self, steps: Callable[[], Rotated]) -> Rotated:
        _check_current(self.paths, self.today)  # refuse before even the lock file is created
        state.state_directory(self.paths.state_dir, create=True)
        # One rotation at a time, from reading the current secret on: a second one would add
        # a second new secret and could retire what the first one put in place.
        with fsutil.locked(os.path.join(self.paths.state_dir, ROTATE_LOCK)):
            return steps()

    def prepare(self) -> None:
        """Read the pair, list the app's secrets, refuse while a rotation is unfinished, and
        find the old key (and why it may not be retired: done.note)."""
        self.client_id, self.secret, recorded = _check_current(self.paths, self.today)
        self.done = self.done._replace(client_id=self.client_id)
        unfinished = rotation.load(self.paths)
        if unfinished is not None and azcli.command() is None:
            raise OnedeskError(UNFINISHED.format(what=unfinished.describe(
                unfinished.holds(self.secret), _in_sync(self.paths))))
        self.az = self._az()
        self.before = self._list(self.az)
        if unfinished is not None:
            listing = self.before
            if unfinished.client_id != self.client_id:  # CID changed since: its key is there
                listing = self._list(azcli.Az(self.az.argv, unfinished.client_id,
                                              self.az.secrets))
            self._refuse_unfinished(unfinished, listing)
        recorded_key = rotation.load_key(self.paths.state_dir, self.client_id, self.secret)
        old, why = current_key(self.before, self.client_id, self.secret, recorded, recorded_key)
        if self.options.retire:
            old, why = self._retirable(old, why, recorded_key)
            if old is not None and why is None and not self.options.dry_run:
                # The last proof before anything may be deleted: Azure AD takes the pair now.
                answer = self.verify(self.client_id, self.secret)
                if answer.status != "valid":
                    why = NOT_PROVEN.format(why=answer.message, cid=self.client_id)
        self.done = self.done._replace(old_key=old.key_id if old else None, note=why)
        if self.options.retire and why:
            self.say(KEEPING_OLD.format(why=why))

    def plan(self) -> Rotated:
        """The dry run: say the steps a rotation would take."""
        ask, done = self.options, self.done
        length = (ENDING_ON.format(end=ask.end_date.isoformat(),
                                   last=(ask.end_date - timedelta(days=1)).isoformat())
                  if ask.end_date else LASTING.format(years=ask.years or DEFAULT_YEARS))
        reset = self.az.reset_args(self.name, ask.years, ask.end_date)
        steps = [PLAN_RESET.format(name=self.name, cid=done.client_id, length=length,
                                   command=azcli.shell_line(["az", *reset])),
                 PLAN_WAIT.format(wait=ask.wait), PLAN_WRITE.format(path=self.paths.settings)]
        if ask.apply_after:
            steps.append(PLAN_APPLY)
        if ask.retire:
            steps.append(PLAN_RETIRE.format(delete=self.az.delete_command(done.old_key))
                         if done.old_key and not done.note else PLAN_KEEP.format(why=done.note))
        for number, step in enumerate(steps, 1):
            self.say(f"{number}. {step}")
        self.say(DRY_RUN_DONE)
        return done

    def add_and_wait(self) -> str:
        """Add the new secret in Azure and wait until Azure AD accepts it; return it."""
        done = self.done
        # Journalled before az runs: a kill from here on leaves a journal that names the new
        # secret (by its display name until its key id is read).
        retiring = done.old_key if self.options.retire and not done.note else None
        self.journal = rotation.start(self.paths, rotation.Intent(
            done.client_id, self.name, [c.key_id for c in self.before], retiring,
            self.options.retire))
        self.say(ADDING.format(cid=done.client_id))
        try:
            return self._add_accepted()
        except KeyboardInterrupt:  # ^C while az runs or while waiting: say what Azure has now
            raise self._interrupted() from None

    def _add_accepted(self) -> str:
        az, ask = self.az, self.options
        try:
            secret = az.reset(self.name, ask.years, ask.end_date)
        except AzError as exc:
            raise self._reset_failed(exc) from None
        az.secrets = (*az.secrets, secret)
        hint = validation.secret_hint(secret)
        self.done = self.done._replace(hint=hint)
        try:
            after = az.list()
        except AzError as exc:
            raise RotationFailed(UNLISTED.format(hint=hint, why=exc, cid=self.client_id),
                                 self.done) from None
        created = new_key(self.before, after, secret)
        if created is None or created.last_day is None:
            why = NOT_LISTED if created is None else NO_END
            raise RotationFailed(UNLISTED.format(hint=hint, why=why, cid=self.client_id),
                                 self.done)
        self.done = self.done._replace(new_key=created.key_id, expires=created.last_day)
        # Before the wait: from here on, a kill leaves a journal that names this key.
        self.journal = rotation.advance(self.paths, self.journal, rotation.ADDED, secret,
                                        key_id=created.key_id,
                                        expires=created.last_day.isoformat())
        delete_new = az.delete_command(created.key_id)
        problems = validation.errors(validation.validate(_as_document(self.client_id, secret)))
        if problems:
            raise RotationFailed(BAD_SECRET.format(why=problems[0].code, delete=delete_new),
                                 self.done)
        self.say(WAITING.format(key=created.key_id, hint=hint,
                                end=created.last_day.isoformat(), wait=ask.wait))
        accepted, waited, last = self._wait_until_accepted(secret)
        self.done = self.done._replace(waited=waited)
        if not accepted:
            raise RotationFailed(NEVER_ACCEPTED.format(key=created.key_id, waited=waited,
                                                       last=last, delete=delete_new), self.done)
        self.say(ACCEPTED.format(waited=waited))
        return secret

    def _wait_until_accepted(self, secret: str) -> tuple[bool, float, str]:
        """Ask Azure AD until it issues a token for the new pair, with backoff, at most
        --wait seconds. Returns (accepted, seconds waited, Azure AD's last answer)."""
        start = self.monotonic()
        pause = FIRST_PAUSE
        while True:
            result = self.verify(self.client_id, secret)
            waited = self.monotonic() - start
            if result.status == "valid":
                return True, waited, result.message
            last = STILL_REFUSED if result.code == NOT_YET else result.message
            # Only "invalid secret" (not yet everywhere) and "could not ask" may pass with time.
            if result.status == "invalid" and result.code != NOT_YET:
                return False, waited, last
            left = self.options.wait - waited
            if left <= 0:
                return False, waited, last
            self.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_PAUSE)

    def write(self, secret: str) -> None:
        """Write the new secret (accepted by Azure AD) and its expiry to the settings file."""
        done = self.done
        try:
            operations.set_entries(self.paths,
                                   operations.Given(done.client_id, secret, done.expires))
        except OnedeskError as exc:
            raise RotationFailed(NOT_WRITTEN.format(
                key=done.new_key, why=exc, delete=self.az.delete_command(done.new_key)),
                done) from None
        self.journal = rotation.advance(self.paths, self.journal, rotation.WRITTEN)
        rotation.save_key(self.paths.state_dir, done.client_id, secret, done.new_key, self.name)
        self.done = done._replace(written=True)
        self.say(WRITTEN.format(path=self.paths.settings, end=done.expires.isoformat()))

    def apply_and_retire(self) -> Rotated:
        """The new secret is written: apply it, and only then (in sync) retire the old one."""
        paths, az, done, retire = self.paths, self.az, self.done, self.options.retire
        apply_command = journal_module.finish_command(paths.root, paths.settings)
        old_delete = (az.delete_command(done.old_key) if done.old_key and not done.note
                      else None)
        if self.options.apply_after:
            try:
                applied = apply.apply(paths, self.say, apply.Options(if_needed=True))
            except OnedeskError as exc:
                # Retiring after the apply is rotate's own step (its journal has the old key).
                finish_with = (FINISH_RETIRES.format(command=self.journal.command(),
                                                     old=done.old_key)
                               if retire and old_delete else apply_command)
                raise RotationFailed(NOT_APPLIED.format(
                    key=done.new_key, path=paths.settings, end=done.expires.isoformat(),
                    why=exc, finish=finish_with), done) from None
            done = self.done = done._replace(applied=applied.after.sync == state.IN_SYNC)
        note = (APPLIED_NOTE if self.options.apply_after
                else NO_APPLY_NOTE.format(path=paths.settings, apply=apply_command))
        if not retire:
            rotation.forget(paths)  # nothing is left but `apply` after --no-apply, which it says
            return done
        if not done.applied:  # never retire what OneDesk may still be using
            raise RotationFailed(CANNOT_RETIRE.format(key=done.new_key, applied=note,
                                                      why=NOT_IN_SYNC, cid=done.client_id),
                                 done)
        self.journal = rotation.advance(paths, self.journal, rotation.APPLIED)
        if done.old_key is None or done.note:
            rotation.forget(paths)  # nothing of this rotation is left to do
            raise RotationFailed(CANNOT_RETIRE.format(key=done.new_key, applied=note,
                                                      why=done.note, cid=done.client_id), done)
        try:
            az.delete(done.old_key)
        except AzError as exc:
            raise RotationFailed(NOT_RETIRED.format(key=done.new_key, applied=note,
                                                    old=done.old_key, why=exc,
                                                    delete=old_delete), done) from None
        rotation.forget(paths)
        self.say(RETIRED.format(old=done.old_key))
        self.done = done._replace(retired=True)
        return self.done

    def finish(self) -> Rotated:
        """`rotate --finish`, under the rotation lock."""
        return self._locked(self._finish)

    def _finish(self) -> Rotated:
        """An interrupted rotation's new secret is in the file: apply it, retire the old one
        if it was asked to, forget the journal. It is not: delete it in Azure (the journal
        proves this server created it), forget the journal."""
        paths = self.paths
        client_id, secret, _ = _check_current(paths, self.today)
        journal = self.journal = rotation.load(paths)
        if journal is None:  # finished already: the same answer, and exit 0, every time
            return Rotated(paths.settings, client_id, finished=NO_UNFINISHED)
        argv = azcli.command()
        if argv is None:
            raise OnedeskError(FINISH_NO_AZ.format(why=azcli.missing()))
        az = self.az = azcli.Az(argv, journal.client_id, (secret,))
        expires = journal.record.get("expires")
        self.done = Rotated(paths.settings, journal.client_id, journal.old_key, journal.key_id,
                            journal.hint, state.parse_date(expires) if expires else None)
        listing = self._list(az)
        if not journal.holds(secret):
            return self._undo(_left_behind(journal, listing))
        self.done = self.done._replace(written=True)
        rotation.save_key(paths.state_dir, client_id, secret, journal.key_id,
                          journal.display_name)
        old = ([c for c in listing if c.key_id == journal.old_key]
               if journal.retire and journal.old_key else [])
        self.done = self.done._replace(old_key=old[0].key_id if old else None)
        self.options = Options(retire_old=bool(old))  # as that rotation asked, and applied
        done = self.apply_and_retire()
        retired = ""
        if journal.retire and journal.old_key:
            retired = (FINISHED_RETIRED if done.retired else FINISHED_OLD_GONE).format(
                old=journal.old_key)
        return done._replace(old_key=journal.old_key, finished=FINISHED.format(
            started=journal.started, key=journal.key_id, retired=retired))

    def _undo(self, left: list[Credential]) -> Rotated:
        """--finish when the file does not hold the new secret: delete it in Azure."""
        journal = self.journal
        if len(left) > 1:
            raise RotationFailed(UNDO_MANY.format(
                started=journal.started, count=len(left), name=journal.display_name,
                keys=", ".join(c.key_id for c in left), cid=journal.client_id,
                command=journal.command()), self.done)
        if left:
            try:
                self.az.delete(left[0].key_id)
            except AzError as exc:
                raise RotationFailed(str(exc), self.done) from None
            summary = UNDONE.format(key=left[0].key_id, started=journal.started)
        else:
            summary = UNDONE_NOTHING.format(started=journal.started)
        rotation.forget(self.paths)
        return self.done._replace(new_key=left[0].key_id if left else None, finished=summary)

    def _az(self) -> azcli.Az:
        argv = azcli.command()
        if argv is None:
            ask = self.options
            end = ask.end_date or add_years(self.today, ask.years or DEFAULT_YEARS)
            reset = azcli.reset_args(self.client_id, self.name, end_date=end,
                                     password_only=True)
            raise OnedeskError(NO_AZ.format(
                why=azcli.missing(), command=azcli.shell_line(["az", *reset]),
                end=end.isoformat(), last=(end - timedelta(days=1)).isoformat(),
                host=self.host))
        return azcli.Az(argv, self.client_id, (self.secret,))

    def _list(self, az: azcli.Az) -> list[Credential]:
        try:
            return az.list()
        except AzError as exc:
            raise RotationFailed(LIST_FAILED.format(why=exc), self.done) from None

    def _retirable(self, old: Credential | None, why: str | None,
                   recorded_key: str | None) -> tuple[Credential | None, str | None]:
        """The old key, and why it may not be retired (None: it may). --retire-key names it
        (the administrator vouches that no other server uses it); --retire-old needs it tied
        to this server: the key id its rotate recorded, or a display name with its name."""
        retire_key = self.options.retire_key
        if retire_key is not None:
            named = [c for c in self.before if c.key_id == retire_key]
            hint = validation.secret_hint(self.secret)
            if not named:
                return old, RETIRE_KEY_UNKNOWN.format(key=retire_key, cid=self.client_id)
            if named[0].hint != hint:
                return old, RETIRE_KEY_OTHER.format(key=retire_key, its=named[0].hint,
                                                    hint=hint)
            return named[0], None
        if (old is not None and why is None and old.key_id != recorded_key
                and old.host != self.host):
            return old, NOT_TIED.format(key=old.key_id, name=old.display_name or "",
                                        host=self.host)
        return old, why

    def _refuse_unfinished(self, journal: rotation.Journal, listing: list[Credential]) -> None:
        """A journal that left nothing behind is forgotten; anything else stops this rotation,
        naming what is left and the command that finishes or undoes it."""
        paths, dry_run = self.paths, self.options.dry_run
        if dry_run and rotation.running(paths):  # (a real run holds rotate.lock itself)
            raise OnedeskError(UNFINISHED.format(what=rotation.RUNNING.format(
                started=journal.started, phase=journal.phase)))
        holds_new = journal.holds(self.secret)
        in_sync = holds_new and _in_sync(paths)
        left = [] if holds_new else _left_behind(journal, listing)
        if not journal.left(holds_new, in_sync) or (not holds_new and not left):
            if dry_run:
                self.say(FORGETTABLE.format(started=journal.started))
            else:
                rotation.forget(paths)
                self.say(FORGOTTEN.format(started=journal.started))
            return
        raise OnedeskError(UNFINISHED.format(what=journal.describe(
            holds_new, in_sync, [c.key_id for c in left])))

    def _added(self) -> list[Credential] | None:
        """The secrets Azure has now that it did not have before (None if az cannot say)."""
        try:
            after = self.az.list()
        except AzError:
            return None
        known = {c.key_id for c in self.before}
        return [c for c in after if c.key_id not in known]

    def _interrupted(self) -> RotationFailed:
        done = self.done
        if done.new_key:
            added = [done.new_key]
        else:
            found = self._added()
            added = (None if found is None
                     else [c.key_id for c in found if c.display_name == self.name])
        if added and len(added) == 1:
            now = INTERRUPTED_UNUSED.format(key=added[0], delete=self.az.delete_command(added[0]))
            done = done._replace(new_key=added[0])
        else:
            now = NOTHING_CHANGED
            if added == []:  # az says nothing of ours was added: nothing is left behind
                rotation.forget(self.paths)
        error = RotationFailed(INTERRUPTED.format(state=now), done)
        error.exit_code = 130  # 128 + SIGINT, as a shell reports it
        return error

    def _reset_failed(self, exc: AzError) -> RotationFailed:
        """After a failed reset, ask Azure whether a secret was added all the same (the call
        can fail after Graph created it), so the message says what is really there. Only a
        secret with this rotation's display name is this server's: in a fleet sharing the
        app, another server's rotation may have added one meanwhile."""
        added, done = self._added(), self.done
        if added is None:  # cannot tell: the journal stays, and names the display name
            return RotationFailed(RESET_FAILED.format(why=exc), done)
        mine = [c for c in added if c.display_name == self.name]
        if len(mine) == 1:
            rotation.advance(self.paths, self.journal, rotation.ADDED, key_id=mine[0].key_id)
            return RotationFailed(RESET_FAILED_ADDED.format(
                why=exc, key=mine[0].key_id, delete=self.az.delete_command(mine[0].key_id)),
                done._replace(new_key=mine[0].key_id))
        if not mine:
            rotation.forget(self.paths)
        if added and not mine:
            return RotationFailed(UNTIED_FOUND.format(
                why=RESET_FAILED.format(why=exc), keys=", ".join(c.key_id for c in added)), done)
        return RotationFailed(RESET_FAILED.format(why=exc), done)
