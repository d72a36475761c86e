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
import shlex
import socket
import time
from collections import namedtuple
from collections.abc import Callable
from datetime import date

from . import (
    CLIENT_ID,
    KEYS,
    SECRET,
    apply,
    azcli,
    fsutil,
    journal,
    operations,
    shellfile,
    state,
    validation,
)
from .azcli import Credential
from .errors import AzError, OnedeskError, RotationFailed
from .paths import Paths

DEFAULT_WAIT = 120.0  # new secrets usually work within a minute; Microsoft allows for more
DEFAULT_YEARS = 1  # az's own default; the portal's longest is 2
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 10.0
ROTATE_LOCK = "rotate.lock"
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
ENDING_ON = "ending {end}"
LASTING = "valid {years} year(s)"
PLAN_WAIT = "wait up to {wait:g} s until Azure AD issues a token with it"
PLAN_WRITE = "write it to {path} and record its expiry"
PLAN_APPLY = ("reinstall the OneDesk packages with it (onedesk-azuread apply) and confirm "
              "status is in sync")
PLAN_RETIRE = "retire the old secret: {delete}"
PLAN_KEEP = "keep the old secret: {why}"
DRY_RUN_DONE = "dry run: nothing was changed"

NO_AZ = ("{why}. Rotate from a workstation with the Azure CLI instead (the secret goes through "
         "the pipe only, never on a command line or a screen): az ad app credential reset "
         "--id {cid} --append --display-name '{name}' --end-date {end} --query password -o tsv "
         "| ssh root@{host} onedesk-azuread set --secret-stdin --expires {end}; then on this "
         "server: onedesk-azuread apply")
NOT_READY = "{path}: cannot rotate: {count} error(s) in the current entries; {fix}"
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
               "still works and was not retired; finish with: {apply}{then}")
THEN_RETIRE = ", then retire the old one with: {delete}"
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
APPLIED_NOTE = " and applied"
NO_APPLY_NOTE = (" in {path}, not applied yet (OneDesk still uses the old secret until: "
                 "{apply})")


class Rotated(namedtuple("Rotated", "path client_id old_key new_key hint expires written "
                                    "applied retired waited dry_run note shown",
                         defaults=(None,))):
    """What `rotate` did (or, with dry_run, would do), for the report."""

    __slots__ = ()
    # path: str; the settings file
    # client_id: str
    # old_key: str | None; the current secret's keyId in Azure (None: not identified)
    # new_key: str | None; the new secret's keyId
    # hint: str | None; the new secret's first 3 characters (what Azure shows)
    # expires: date | None; the new secret's endDateTime's date, as recorded
    # written: bool; the settings file holds the new secret
    # applied: bool; the packages were installed again with it (status in sync)
    # retired: bool; the old secret was deleted in Azure
    # waited: float; seconds until Azure AD accepted the new secret
    # dry_run: bool
    # note: str | None; why the old secret was or would be kept
    # shown: operations.Inspection | None; the settings file as `show` sees it at the end

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
        return [self.explain()] + ([] if self.applied else [operations.NEXT_STEP])

    def as_dict(self) -> dict:
        shown = self.shown.as_dict() if self.shown is not None else {}
        return {**shown, "changed": self.changed, "dry_run": self.dry_run, "file": self.path,
                "client_id": self.client_id, "old_key_id": self.old_key,
                "new_key_id": self.new_key, "secret_hint": self.hint,
                "expires": self.expires.isoformat() if self.expires else None,
                "written": self.written, "applied": self.applied, "retired": self.retired,
                "waited_seconds": round(self.waited, 1), "note": self.note}


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def display_name(today: date) -> str:
    return f"onedesk-azuread {today.isoformat()}"


def current_key(credentials: list[Credential], client_id: str, secret: str,
                expires: date | None) -> tuple[Credential | None, str | None]:
    """The Azure entry of the secret in the file: its hint, and the recorded expiry against
    endDateTime. Anything but exactly one match is ambiguous: (None, why)."""
    hint = validation.secret_hint(secret)
    same = [c for c in credentials if c.hint == hint]
    if expires is not None:
        same = [c for c in same if c.end_date == expires]
    if len(same) == 1:
        return same[0], None
    ending = ENDING.format(end=expires.isoformat()) if expires else ""
    if not same:
        return None, AMBIGUOUS_NONE.format(cid=client_id, hint=hint, ending=ending)
    return None, AMBIGUOUS_MANY.format(count=len(same), cid=client_id, hint=hint, ending=ending,
                                       keys=", ".join(c.key_id for c in same))


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
    errors = [f for f in validation.errors(info.findings) if f.code != "secret-expired"]
    if errors:
        raise operations.Refused(paths.settings, errors)
    return client_id, secret, info.expires


def _wait_until_accepted(verify: Callable[[str, str], object], client_id: str, secret: str,
                         wait: float, sleep: Callable[[float], None],
                         clock: Callable[[], float]) -> tuple[bool, float, str]:
    """Ask Azure AD until it issues a token for the new pair, with backoff, at most ``wait``
    seconds. Returns (accepted, seconds waited, Azure AD's last answer)."""
    start = clock()
    pause = FIRST_PAUSE
    while True:
        result = verify(client_id, secret)
        waited = clock() - start
        if result.status == "valid":
            return True, waited, result.message
        last = STILL_REFUSED if result.code == NOT_YET else result.message
        # Only "invalid secret" (not yet everywhere) and "could not ask" may pass with time.
        if result.status == "invalid" and result.code != NOT_YET:
            return False, waited, last
        left = wait - waited
        if left <= 0:
            return False, waited, last
        sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


def rotate(paths: Paths, *, verify: Callable[[str, str], object], say: Callable[[str], None],
           years: int | None = None, end_date: date | None = None, retire_old: bool = False,
           apply_after: bool = True, dry_run: bool = False, wait: float = DEFAULT_WAIT,
           today: date | None = None, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> Rotated:
    """The whole `rotate`; raises Failed (with what was done) when a step fails.

    ``verify(client_id, secret)`` asks Azure AD (verify.verify with the tenant bound).
    """
    try:
        done = _rotate_locked(paths, verify, say, years, end_date, retire_old, apply_after,
                              dry_run, wait, today, sleep, clock)
    except RotationFailed as exc:
        exc.result = exc.result._replace(shown=operations.show(paths))
        raise
    return done._replace(shown=operations.show(paths))


def _rotate_locked(paths: Paths, verify: Callable[[str, str], object],
                   say: Callable[[str], None], years: int | None, end_date: date | None,
                   retire_old: bool, apply_after: bool, dry_run: bool, wait: float,
                   today: date | None, sleep: Callable[[float], None],
                   clock: Callable[[], float]) -> Rotated:
    today = today or date.today()
    if end_date is not None and end_date <= today:
        raise OnedeskError(PAST_END.format(end=end_date.isoformat()))
    if dry_run:
        return _start(paths, verify, say, years, end_date, retire_old, apply_after, True, wait,
                      today, sleep, clock)
    _check_current(paths, today)  # refuse before even the lock file is created
    state.state_directory(paths.state_dir, create=True)
    # One rotation at a time, from reading the current secret on: a second one would add a
    # second new secret and could retire what the first one put in place.
    with fsutil.locked(os.path.join(paths.state_dir, ROTATE_LOCK)):
        return _start(paths, verify, say, years, end_date, retire_old, apply_after, False,
                      wait, today, sleep, clock)


def _start(paths: Paths, verify: Callable[[str, str], object], say: Callable[[str], None],
           years: int | None, end_date: date | None, retire_old: bool, apply_after: bool,
           dry_run: bool, wait: float, today: date, sleep: Callable[[float], None],
           clock: Callable[[], float]) -> Rotated:
    client_id, secret, recorded = _check_current(paths, today)
    name = display_name(today)
    argv = azcli.command()
    if argv is None:
        end = end_date or add_years(today, years or DEFAULT_YEARS)
        raise OnedeskError(NO_AZ.format(why=azcli.missing(), cid=client_id, name=name,
                                        end=end.isoformat(), host=socket.gethostname()))
    az = azcli.Az(argv, client_id, (secret,))
    done = Rotated(paths.settings, client_id, None, None, None, None, False, False, False, 0.0,
                   dry_run, None)
    try:
        before = az.list()
    except AzError as exc:
        raise RotationFailed(LIST_FAILED.format(why=exc), done) from None
    old, ambiguous = current_key(before, client_id, secret, recorded)
    done = done._replace(old_key=old.key_id if old else None, note=ambiguous)
    if retire_old and ambiguous:
        say(KEEPING_OLD.format(why=ambiguous))
    if dry_run:
        return _dry_run(paths, az, done, name, years, end_date, retire_old, apply_after, wait,
                        say)
    return _rotate(paths, az, done, before, name, years, end_date, retire_old, apply_after,
                   wait, verify, say, sleep, clock)


def _dry_run(paths: Paths, az: azcli.Az, done: Rotated, name: str, years: int | None,
             end_date: date | None, retire_old: bool, apply_after: bool, wait: float,
             say: Callable[[str], None]) -> Rotated:
    length = (ENDING_ON.format(end=end_date.isoformat()) if end_date
              else LASTING.format(years=years or DEFAULT_YEARS))
    steps = [PLAN_RESET.format(name=name, cid=done.client_id, length=length,
                               command=shlex.join(["az", *az.reset_args(name, years, end_date)])),
             PLAN_WAIT.format(wait=wait), PLAN_WRITE.format(path=paths.settings)]
    if apply_after:
        steps.append(PLAN_APPLY)
    if retire_old:
        steps.append(PLAN_RETIRE.format(delete=az.delete_command(done.old_key)) if done.old_key
                     else PLAN_KEEP.format(why=done.note))
    for number, step in enumerate(steps, 1):
        say(f"{number}. {step}")
    say(DRY_RUN_DONE)
    return done


def _rotate(paths: Paths, az: azcli.Az, done: Rotated, before: list[Credential], name: str,
            years: int | None, end_date: date | None, retire_old: bool, apply_after: bool,
            wait: float, verify: Callable[[str, str], object], say: Callable[[str], None],
            sleep: Callable[[float], None], clock: Callable[[], float]) -> Rotated:
    say(ADDING.format(cid=done.client_id))
    try:
        secret, done = _add_accepted(az, done, before, name, years, end_date, wait,
                                     verify, say, sleep, clock)
    except KeyboardInterrupt:  # ^C while az runs or while waiting: say what Azure has now
        raise _interrupted(az, before, done) from None
    try:
        operations.set_entries(paths, client_id=done.client_id, secret=secret,
                               expires=done.expires)
    except OnedeskError as exc:
        raise RotationFailed(NOT_WRITTEN.format(key=done.new_key, why=exc,
                                        delete=az.delete_command(done.new_key)),
                     done) from None
    done = done._replace(written=True)
    say(WRITTEN.format(path=paths.settings, end=done.expires.isoformat()))
    return _apply_and_retire(paths, az, done, retire_old, apply_after, say)


def _add_accepted(az: azcli.Az, done: Rotated, before: list[Credential], name: str,
                  years: int | None, end_date: date | None, wait: float,
                  verify: Callable[[str, str], object], say: Callable[[str], None],
                  sleep: Callable[[float], None], clock: Callable[[], float]
                  ) -> tuple[str, Rotated]:
    """Add the new secret in Azure and wait until Azure AD accepts it: (secret, done)."""
    try:
        secret = az.reset(name, years, end_date)
    except AzError as exc:
        raise _reset_failed(az, before, exc, done) from None
    az.secrets = (*az.secrets, secret)
    hint = validation.secret_hint(secret)
    done = done._replace(hint=hint)
    try:
        after = az.list()
    except AzError as exc:
        raise RotationFailed(UNLISTED.format(hint=hint, why=exc, cid=done.client_id),
                             done) from None
    created = new_key(before, after, secret)
    if created is None or created.end_date is None:
        why = NOT_LISTED if created is None else NO_END
        raise RotationFailed(UNLISTED.format(hint=hint, why=why, cid=done.client_id), done)
    done = done._replace(new_key=created.key_id, expires=created.end_date)
    delete_new = az.delete_command(created.key_id)
    problems = validation.errors(validation.validate(_as_document(done.client_id, secret)))
    if problems:
        raise RotationFailed(BAD_SECRET.format(why=problems[0].code, delete=delete_new), done)
    say(WAITING.format(key=created.key_id, hint=hint, end=created.end_date.isoformat(),
                       wait=wait))
    accepted, waited, last = _wait_until_accepted(verify, done.client_id, secret, wait, sleep,
                                                  clock)
    done = done._replace(waited=waited)
    if not accepted:
        raise RotationFailed(NEVER_ACCEPTED.format(key=created.key_id, waited=waited, last=last,
                                           delete=delete_new), done)
    say(ACCEPTED.format(waited=waited))
    return secret, done


def _apply_and_retire(paths: Paths, az: azcli.Az, done: Rotated, retire_old: bool,
                      apply_after: bool, say: Callable[[str], None]) -> Rotated:
    """The new secret is written: apply it, and only then (in sync) retire the old one."""
    apply_command = journal.finish_command(paths.root, paths.settings)
    old_delete = az.delete_command(done.old_key) if done.old_key else None
    if apply_after:
        try:
            applied = apply.apply(paths, say, confirm_removal=None)
        except OnedeskError as exc:
            then = THEN_RETIRE.format(delete=old_delete) if retire_old and old_delete else ""
            raise RotationFailed(NOT_APPLIED.format(key=done.new_key, path=paths.settings,
                                            end=done.expires.isoformat(), why=exc,
                                            apply=apply_command, then=then), done) from None
        done = done._replace(applied=applied.after.sync == state.IN_SYNC)
    note = APPLIED_NOTE if apply_after else NO_APPLY_NOTE.format(path=paths.settings,
                                                                 apply=apply_command)
    if not retire_old:
        return done
    if not done.applied:  # never retire what OneDesk may still be using
        raise RotationFailed(CANNOT_RETIRE.format(key=done.new_key, applied=note,
                                          why=NOT_IN_SYNC, cid=done.client_id),
                     done)
    if done.old_key is None:
        raise RotationFailed(CANNOT_RETIRE.format(key=done.new_key, applied=note, why=done.note,
                                          cid=done.client_id), done)
    try:
        az.delete(done.old_key)
    except AzError as exc:
        raise RotationFailed(NOT_RETIRED.format(key=done.new_key, applied=note, old=done.old_key,
                                        why=exc, delete=old_delete), done) from None
    say(RETIRED.format(old=done.old_key))
    return done._replace(retired=True)


def _as_document(client_id: str, secret: str) -> shellfile.Document:
    """The new pair as the file will hold it, for the offline checks before the wait."""
    text = shellfile.rewrite(shellfile.parse("", KEYS, "-"), {CLIENT_ID: client_id, SECRET: secret})
    return shellfile.parse(text, KEYS, "-")


def _added(az: azcli.Az, before: list[Credential]) -> list[Credential]:
    """The secrets Azure has now that it did not have before (none if az cannot say)."""
    try:
        after = az.list()
    except AzError:
        return []
    known = {c.key_id for c in before}
    return [c for c in after if c.key_id not in known]


def _interrupted(az: azcli.Az, before: list[Credential], done: Rotated) -> RotationFailed:
    added = [done.new_key] if done.new_key else [c.key_id for c in _added(az, before)]
    if len(added) == 1:
        now = INTERRUPTED_UNUSED.format(key=added[0], delete=az.delete_command(added[0]))
        done = done._replace(new_key=added[0])
    else:
        now = NOTHING_CHANGED
    error = RotationFailed(INTERRUPTED.format(state=now), done)
    error.exit_code = 130  # 128 + SIGINT, as a shell reports it
    return error


def _reset_failed(az: azcli.Az, before: list[Credential], exc: AzError,
                  done: Rotated) -> RotationFailed:
    """After a failed reset, ask Azure whether a secret was added all the same (the call can
    fail after Graph created it), so the message says what is really there."""
    added = _added(az, before)
    if len(added) == 1:
        return RotationFailed(RESET_FAILED_ADDED.format(why=exc, key=added[0].key_id,
                                                delete=az.delete_command(added[0].key_id)),
                      done._replace(new_key=added[0].key_id))
    return RotationFailed(RESET_FAILED.format(why=exc), done)
