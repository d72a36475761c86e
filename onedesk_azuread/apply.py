"""`apply`: the vendor's reinstall (remove onedesk-db-utils, install the four packages), safely.

Before anything is removed: the entries are valid, every package the removal
takes away can be installed again from the enabled repositories, and remote
packages are already in dnf's cache; the plan is journalled (journal.py). From
the removal until the reinstall has run, SIGINT, SIGHUP and SIGTERM are held
(signals.py), and dnf runs in a session of its own so a terminal's ^C or hangup
never reaches it. The install runs from dnf's cache (what the prefetch downloaded), so a
repository that went away cannot strand the removal. After: the plugin's record
says the installed packages carry the current entries. Any failure says what
state the system is in and the one command that completes the job, and a
killed apply is completed by the next one. A package of someone else's that the
removal took and that nothing offers any more never keeps OneDesk uninstalled:
OneDesk's packages are installed without it, and it is reported (exit 1).
"""

from __future__ import annotations

import contextlib
import os
from collections import namedtuple
from collections.abc import Callable, Iterator

from . import hook, journal, operations, packages, signals, state
from .errors import OnedeskError, Refused, StateError
from .packages import DB_UTILS, ONEDESK_PACKAGES
from .paths import Paths
from .status import status

INTERRUPTED = "interrupted by {name} during the reinstall: apply finished the job first ({state})"
INTERRUPTED_EARLY = "interrupted by {name} before anything was removed: nothing was changed"
CACHE_FAILED = ("the install from dnf's cache failed ({error}); installing from the "
                "enabled repositories instead")
INSTALLING_APART = ("the install failed ({error}); installing OneDesk's packages by themselves, "
                    "then each other package alone")
NOT_BACK = ("{name} was removed with {db_utils} and could not be installed again ({why}); "
            "install it when a repository offers it again: {command}")
NOT_ALL_BACK = ("OneDesk's packages are installed again ({state}), but {names} {were} removed "
                "with {db_utils} and {are} not: install {them} when a repository offers {them} "
                "again: {command}")


class Step(namedtuple("Step", "title args fallback", defaults=(None,))):
    """One dnf command of the reinstall."""

    __slots__ = ()
    # title: str
    # args: list[str]; dnf arguments (the dnf command and --installroot come first)
    # fallback: list[str] | None; dnf arguments to run instead when ``args`` fail


class Plan(namedtuple("Plan", "removed reinstalled steps resumed", defaults=(None,))):
    """The reinstall, worked out before anything changes."""

    __slots__ = ()
    # removed: list[str]; what `dnf remove onedesk-db-utils` takes away
    # reinstalled: list[str]; what is installed again (the four, and anything else removed)
    # steps: list[Step]
    # resumed: journal.Journal | None; the interrupted apply this plan completes


class NotBack(namedtuple("NotBack", "name why")):
    """A package the removal took that could not be installed again (not one of OneDesk's)."""

    __slots__ = ()
    # name: str
    # why: str; dnf's last words

    def line(self, root: str) -> str:
        return NOT_BACK.format(name=self.name, db_utils=DB_UTILS, why=self.why,
                               command=install_command(root, [self.name]))


class Outcome(namedtuple("Outcome", "summary interrupted not_back", defaults=((),))):
    """What running the plan left to report."""

    __slots__ = ()
    # summary: list[str]; dnf's lines worth repeating: the plugin's, errors, warnings
    # interrupted: list[int]; the signals received while they were held
    # not_back: list[NotBack]; packages of others that could not be installed again


def _check_entries(paths: Paths, completing: bool = False) -> None:
    """The plugin's own check, so that apply refuses what dnf would stop.

    A passed expiry only warns in dnf (an unrelated upgrade must not be held back), but a
    fresh apply refuses it: removing OneDesk to install it again with a secret Azure AD
    no longer accepts buys nothing. Completing an interrupted apply never refuses it: the
    packages are already gone, and getting them back matters more.
    """
    checked = hook.preflight(paths, require=True)
    if not checked.present:
        raise OnedeskError(f"{paths.settings}: has no Azure AD entries to apply; "
                           f"set them first: onedesk-azuread set")
    stops = checked.blocking if completing else checked.blocking + checked.alerts
    if stops:
        raise Refused(paths.settings, stops, Refused.FIX_FIRST)


def plan(paths: Paths) -> Plan:
    """Work out the reinstall; raise (changing nothing) when it cannot be done safely."""
    _check_entries(paths)
    root = paths.root
    have = packages.installed(root, ONEDESK_PACKAGES)
    removed: list[str] = []
    if have[DB_UTILS] is not None:
        dependents = packages.query(root, "--installed", "--whatrequires", DB_UTILS,
                                    "--recursive", "--qf", "%{name}")
        removed = sorted({DB_UTILS, *dependents})
    reinstalled = list(ONEDESK_PACKAGES) + [name for name in removed
                                            if name not in ONEDESK_PACKAGES]
    offered = set(packages.query(root, "--available", "--qf", "%{name}", *reinstalled))
    missing = [name for name in reinstalled if name not in offered]
    if missing:
        raise OnedeskError(
            f"nothing was removed: no enabled repository offers {', '.join(missing)}, so "
            f"{'it' if len(missing) == 1 else 'they'} could not be installed again; enable the "
            f"OneDesk repository (dnf repolist) and run onedesk-azuread apply again")
    extra = [name for name in reinstalled if name not in have]
    if extra:  # dependents beyond the four: ask rpm about them too
        have = {**have, **packages.installed(root, extra)}
    steps = _prefetch_steps(root, reinstalled, have)
    if removed:
        others = [name for name in removed if name != DB_UTILS]
        title = f"remove {DB_UTILS}" + (f" and what requires it ({', '.join(others)})"
                                        if others else "")
        steps.append(Step(title, ["remove", "-y", "--noautoremove", DB_UTILS]))
    steps.append(_install_step(reinstalled))
    return Plan(removed, reinstalled, steps)


def _install_step(names: list[str]) -> Step:
    """Install from dnf's cache: the prefetch put there exactly what this needs, and the
    network or the repository may be gone by now. Should the cache not serve (cleaned,
    another cachedir), install from the repositories after all."""
    return Step(f"install {', '.join(names)} (from dnf's cache)",
                ["install", "-y", "--cacheonly", *names], ["install", "-y", *names])


def _prefetch_steps(root: str, names: list[str], have: dict[str, str | None]) -> list[Step]:
    """Download now what the install will need, so a lost network cannot strand the removal.

    `dnf install --downloadonly` skips installed packages, so each installed one is
    fetched by the command that names the version `dnf install` will pick:
    reinstall (same version), upgrade (newer) or downgrade (older).
    """
    available = {}
    for line in packages.query(root, "--available", "--latest-limit", "1",
                               "--qf", "%{name} %{name}-%{evr}.%{arch}", *names):
        name, nevra = line.split()
        available[name] = nevra
    upgrades = set(packages.query(root, "--upgrades", "--qf", "%{name}", *names))
    groups: dict[str, list[str]] = {"install": [], "reinstall": [], "upgrade": [], "downgrade": []}
    for name in names:
        current = have.get(name)
        if current is None:
            groups["install"].append(name)
        elif current == available.get(name):
            groups["reinstall"].append(name)
        elif name in upgrades:
            groups["upgrade"].append(name)
        else:
            groups["downgrade"].append(name)
    return [Step(f"download ({command}) {', '.join(group)}",
                 [command, "-y", "--downloadonly", *group])
            for command, group in groups.items() if group]


def _kind(step: Step) -> str:
    if "--downloadonly" in step.args:
        return "prefetch"
    return "remove" if step.args[0] == "remove" else "install"


# --- Resuming a journalled apply ---------------------------------------------------------

def prepare(paths: Paths, say: Callable[[str], None], dry_run: bool = False) -> Plan:
    """The plan: completing the journalled apply if one was interrupted, else a fresh one."""
    found = journal.load(paths)
    if found is None:
        return plan(paths)
    names = sorted(set(found.reinstalled) | set(found.removed))
    have = packages.installed(paths.root, names)
    missing = [name for name in found.reinstalled if have[name] is None]
    if missing:
        say(f"completing the apply started {found.started}, interrupted {found.when()}: "
            f"not installed again: {', '.join(missing)}")
        _check_entries(paths, completing=True)
        return Plan(found.removed, found.reinstalled, [_install_step(found.reinstalled)], found)
    if found.install_began and status(paths, unfinished_too=False).sync == state.IN_SYNC:
        say(f"completing the apply started {found.started}: the packages are installed "
            f"again; confirming")
        return Plan(found.removed, found.reinstalled, [], found)
    say(f"the apply started {found.started} was interrupted {found.when()}; nothing is "
        f"missing: starting it again")
    if not dry_run:
        journal.finish(paths)  # nothing to complete; the fresh plan journals itself
    return plan(paths)


@contextlib.contextmanager
def exclusive(paths: Paths) -> Iterator[int]:
    """One apply at a time: a second one would take the first one's journal for its own.

    Yields the lock's fd, for `run` to pass on to dnf: should this apply be killed, the
    dnf it started goes on (in its own session) and holds the lock until it is done,
    so the next apply waits for it instead of racing it.
    """
    fd = journal.lock(paths)
    try:
        yield fd
    finally:
        journal.unlock(fd)


# --- Running it ------------------------------------------------------------------------

def run(paths: Paths, the_plan: Plan, say: Callable[[str], None],
        lock_fd: int | None = None) -> Outcome:
    """Carry out the plan; raise with the system's state and the completing command on failure.

    ``lock_fd``: the lock from `exclusive`. Returns the summary to print and the signals
    that were held; `confirm` comes next.
    """
    held = signals.Held(say, again=bool(the_plan.removed))
    try:
        return _run(paths, the_plan, say, held, () if lock_fd is None else (lock_fd,))
    finally:
        held.restore()


def _run(paths: Paths, the_plan: Plan, say: Callable[[str], None], held: signals.Held,
         pass_fds: tuple[int, ...]) -> Outcome:
    summary: list[str] = []

    def show(line: str) -> None:
        if line.strip():
            say(f"    {line}")
            if _worth_showing(line) and line.strip() not in summary:
                summary.append(line.strip())

    def dnf(args: list[str]) -> packages.Completed:
        return packages.dnf_live(paths.root, *args, line=show, wake_fd=held.wake_fd,
                                 on_wake=held.announce, pass_fds=pass_fds)

    def attempt(step: Step) -> str | None:
        """Run one step (and its fallback); None when it succeeded, else dnf's last words."""
        say(f"==> {step.title}")
        try:
            result = dnf(step.args)
            # Not when the plugin stopped it: the repositories would change nothing.
            if result.returncode and step.fallback and not _stopped_by_plugin(
                    result.last_error()):
                say(f"==> {CACHE_FAILED.format(error=result.last_error())}")
                result = dnf(step.fallback)
            why = result.last_error() if result.returncode else None
        except OnedeskError as exc:  # dnf could not even start
            why = str(exc)
        held.announce()
        return why

    not_back: list[NotBack] = []
    record = the_plan.resumed
    try:
        if record is None:
            record = journal.start(paths, the_plan.removed, the_plan.reinstalled,
                                   [dict(step._asdict()) for step in the_plan.steps])
        for step in the_plan.steps:
            kind = _kind(step)
            if kind != "prefetch":
                held.hold()
                record = _advance(paths, record, journal.REMOVING if kind == "remove"
                                  else journal.INSTALLING, say)
            why = attempt(step)
            if why and kind == "install" and not _stopped_by_plugin(why):
                why, not_back = (_install_apart(the_plan.reinstalled, why, attempt, say)
                                 or (why, []))
            if why:
                raise _failure(paths, the_plan, f"dnf {step.args[0]} failed: {why}")
        _advance(paths, record, journal.CONFIRMING, say)
    except signals.Interrupted as exc:
        raise _failure(paths, the_plan, None, exc.signum) from None
    return Outcome(summary, list(held.received), not_back)


def _stopped_by_plugin(why: str) -> bool:
    """The plugin stopped dnf (its errors say who speaks): another try changes nothing."""
    return "onedesk-azuread" in why


def _install_apart(names: list[str], error: str, attempt: Callable[[Step], str | None],
                   say: Callable[[str], None]) -> tuple[str | None, list[NotBack]] | None:
    """After the install of everything failed: OneDesk's own packages first, then each
    other package (a third party's, removed with onedesk-db-utils) by itself.

    A package that no repository and no cache offers any more (its vendor withdrew it)
    must not keep OneDesk uninstalled: OneDesk comes back, and the packages that could
    not are reported. Returns (why OneDesk's own install failed, or None; the other
    packages not installed again), or None when there is nothing to take apart.
    """
    ours = [name for name in names if name in ONEDESK_PACKAGES]
    others = [name for name in names if name not in ONEDESK_PACKAGES]
    if not others or not ours:
        return None
    say(f"==> {INSTALLING_APART.format(error=error)}")
    why = attempt(_install_step(ours))
    if why:
        return why, []
    not_back = []
    for name in others:
        reason = attempt(_install_step([name]))
        if reason:
            not_back.append(NotBack(name, reason))
    return None, not_back


def _advance(paths: Paths, record: journal.Journal, phase: str, say: Callable[[str], None]
             ) -> journal.Journal:
    """Move the journal on; a failure to write it must not stop a reinstall half done (the
    phase is advice: completing an apply asks rpm what is missing)."""
    try:
        return journal.advance(paths, record, phase)
    except StateError as exc:
        say(f"warning: {exc}; going on")
        return record


def _failure(paths: Paths, the_plan: Plan, why: str | None, signum: int | None = None
             ) -> OnedeskError:
    """The error for a step that failed (or a signal before the removal): what state the
    system is in, asked of rpm, and the one command that completes the job."""
    names = the_plan.removed
    have = packages.installed(paths.root, names) if names else {}
    gone = [name for name in names if have.get(name) is None]
    if not gone:
        journal.finish(paths)  # nothing to complete: the next apply starts afresh
        if signum is not None:
            error = OnedeskError(INTERRUPTED_EARLY.format(name=signals.name(signum)))
            error.exit_code = 128 + signum
            return error
        return OnedeskError(f"nothing was removed: {why}. Fix that and run "
                            f"onedesk-azuread apply again")
    command = journal.finish_command(paths.root, paths.settings)
    cause = f" ({why})" if why else f" (interrupted by {signals.name(signum)})"
    error = OnedeskError(
        f"{', '.join(gone)} {'was' if len(gone) == 1 else 'were'} removed and "
        f"{'is' if len(gone) == 1 else 'are'} NOT installed again{cause}; the plan is "
        f"journalled in {journal.path_of(paths)}. Complete the job with: {command}")
    if signum is not None:
        error.exit_code = 128 + signum
    return error


def _worth_showing(line: str) -> bool:
    return "onedesk-azuread" in line or line.lstrip().lower().startswith(("error", "warning"))


def install_command(root: str, names: list[str]) -> str:
    """The dnf command that installs ``names`` in ``root``, for a person to run later."""
    words = ["dnf"]
    if os.path.abspath(root) != "/":
        words.append(f"--installroot={os.path.abspath(root)}")
    return " ".join(words + ["install", *names])


def not_back_error(paths: Paths, not_back: list[NotBack], after) -> OnedeskError:
    """The exit after a job done but for packages of others that could not come back."""
    names = [item.name for item in not_back]
    one = len(names) == 1
    return OnedeskError(NOT_ALL_BACK.format(
        state=after.sync, names=", ".join(names), db_utils=DB_UTILS, were="was" if one else "were",
        are="is" if one else "are", them="it" if one else "them",
        command=install_command(paths.root, names)))


def interrupted_error(signums: list[int], after) -> OnedeskError:
    """The exit after a held signal: the job was finished first; the signal is reported."""
    error = OnedeskError(INTERRUPTED.format(name=signals.name(signums[0]), state=after.sync))
    error.exit_code = 128 + signums[0]
    return error


def confirm(paths: Paths, say: Callable[[str], None]):
    """The status after the reinstall; an error if the plugin did not record the entries.
    In sync, the journal has done its job and goes."""
    after = status(paths, unfinished_too=False)
    if after.sync != state.IN_SYNC:
        raise OnedeskError(
            f"the packages were installed again, but the plugin did not record the settings as "
            f"applied ({after.sync}): is python3-dnf-plugin-onedesk-azuread installed and enabled "
            f"in /etc/dnf/plugins/{hook.PLUGIN_CONF}? Then run: "
            f"{journal.finish_command(paths.root, paths.settings)}")
    try:
        journal.finish(paths)
    except StateError as exc:  # done all the same; the next apply only confirms again
        say(f"warning: {exc}")
    return after


class Applied(namedtuple("Applied", "plan outcome after shown")):
    """What `apply` did, for the report."""

    __slots__ = ()
    # plan: Plan
    # outcome: Outcome | None; None for a dry run, or when nothing was needed
    # after: status.Status | None; the confirmed status (None for a dry run)
    # shown: operations.Inspection; the settings file as `show` sees it

    @property
    def changed(self) -> bool:
        return self.outcome is not None and bool(self.plan.steps)

    @property
    def not_back(self) -> list[NotBack]:
        return list(self.outcome.not_back) if self.outcome is not None else []

    def as_dict(self) -> dict:
        record = {**self.shown.as_dict(), "changed": self.changed,
                  "removed": self.plan.removed,
                  "reinstalled": self.plan.reinstalled if self.outcome is not None else [],
                  "not_reinstalled": [item.name for item in self.not_back],
                  "completed_interrupted": self.plan.resumed is not None,
                  "steps": [{"title": step.title, "args": step.args, "fallback": step.fallback}
                            for step in self.plan.steps]}
        if self.after is not None:
            record["status"] = self.after.as_dict()
        return record


NOTHING_TO_DO = "nothing to do: the installed packages already carry these settings"


class Options(namedtuple("Options", "dry_run if_needed show_plan confirm_removal",
                         defaults=(False, False, None, None))):
    """How `apply` runs, and the questions its caller answers."""

    __slots__ = ()
    # dry_run: bool; plan and show, change nothing
    # if_needed: bool; do nothing when `status` is already fine (valid, in sync, no
    #   unfinished apply)
    # show_plan: Callable[[Plan], None] | None; called before anything changes
    # confirm_removal: Callable[[Plan], None] | None; called before a fresh removal (it
    #   may raise to stop)


AS_ASKED = Options()  # a real apply, whatever status says, with no questions


def apply(paths: Paths, say: Callable[[str], None], options: Options = AS_ASKED) -> Applied:
    """The whole `apply`: plan (or complete the journalled one), run, confirm.

    Raises with the system's state and the completing command on failure, and
    `interrupted_error` after a held signal (the job itself was finished). Packages of
    others that could not be installed again are said and listed in ``not_back``: the
    job itself is done (`not_back_error` is the exit for them).
    """
    dry_run, if_needed, show_plan, confirm_removal = options
    if if_needed:
        now = status(paths)
        if now.ok:
            say(NOTHING_TO_DO)
            return Applied(Plan([], [], []), None, now, operations.show(paths))
    with contextlib.nullcontext() if dry_run else exclusive(paths) as lock:
        the_plan = prepare(paths, say, dry_run=dry_run)
        if show_plan is not None:
            show_plan(the_plan)
        if dry_run:
            say("dry run: nothing was changed")
            return Applied(the_plan, None, None, operations.show(paths))
        if the_plan.removed and the_plan.resumed is None and confirm_removal is not None:
            confirm_removal(the_plan)
        outcome = run(paths, the_plan, say, lock)
        for line in outcome.summary:
            say(line)
        after = confirm(paths, say)
    say(f"done: {after.explain()}")
    for item in outcome.not_back:
        say(item.line(paths.root))
    if outcome.interrupted:
        raise interrupted_error(outcome.interrupted, after)
    return Applied(the_plan, outcome, after, operations.show(paths))

