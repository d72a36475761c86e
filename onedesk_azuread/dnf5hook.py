"""What dnf 5's actions plugin runs in a transaction that installs OneDesk.

dnf 5 does not load dnf 4 plugins. Its actions plugin (libdnf5-plugin-actions)
reads ``/etc/dnf/libdnf5-plugins/actions.d/onedesk_azuread.actions``, whose
lines run ``onedesk-azuread --root=INSTALLROOT dnf5-hook CALLBACK ...`` only
for the trigger package coming into the system (install, reinstall, upgrade,
downgrade), on the host side, never chrooted. The hook answers in the plugin's
plain protocol on stdout, one line each: ``stop=MESSAGE`` stops dnf 5 (in
``goal_resolved``: before anything is downloaded), ``error=MESSAGE`` fails the
action (with ``raise_error=1`` dnf 5 stops; in ``pre_transaction`` nothing is
installed), ``log.LEVEL=MESSAGE`` goes to dnf5.log. What a person should read
goes to stderr too (``say``): dnf 5 leaves the action's stderr on the terminal.

The three callbacks do what the dnf 4 plugin's three hooks do, through the
same library calls (``transaction``), each in one small function below:

- ``goal_resolved``: the check before anything is downloaded (``_check``);
- ``pre_transaction``: the re-check and ``check --fix``'s repairs just before
  the packages are installed (``_prepare``). No action can hand variables to
  the install scripts (they run in rpm's chroot with dnf 5's environment), so
  the scripts read the file this step left validated and canonical;
- ``post_transaction``: the applied-state record (``_record``).

How post_transaction knows what pre_transaction validated: pre_transaction
writes the applied-state record of exactly the pair it validated, with the
trigger NEVRAs, as a hand-off under the state directory, named after the dnf 5
process (``${pid}``, the same in every callback of one run); post_transaction
renames it over ``applied.json``. Nothing passes through the actions plugin's
``tmp.*`` variables (a missing one makes dnf 5 skip the action silently) or
the command line (``ps`` shows it to every user), and re-reading the file after
the install would record whatever it holds then, not what the scripts read.
A transaction that fails after pre_transaction never runs post_transaction:
its hand-off stays unused and the next pre_transaction removes it.
"""

from __future__ import annotations

import os

from .errors import OnedeskError, StateError
from .paths import DEFAULT_FILE, Paths
from .trust import printable

CALLBACKS = ("goal_resolved", "pre_transaction", "post_transaction")
# ${pkg.action} of a package coming in: install, upgrade, downgrade, reinstall.
# The shipped lines filter on direction `in` already; this keeps a removal
# unblocked even if someone edits the direction away.
INBOUND = ("I", "U", "D", "R")
HANDOFF_DIR = "dnf5-pending"
PREFIX = "onedesk-azuread: "

MSG_BAD_CALL = ("onedesk-azuread: dnf5-hook: unknown callback %r or bad ${pid} %r; "
                "restore the shipped onedesk_azuread.actions")
MSG_BAD_SETTINGS = ("onedesk-azuread: onedesk_azuread.actions: --settings=%s is not an absolute "
                    "path without \"..\" or control characters; give the settings file as seen "
                    "inside the installroot: --settings=/root/.OneDesk; nothing was installed")


class _Protocol:
    """The actions plugin's plain protocol on stdout, and the same words for a person."""

    def __init__(self, say):
        self.lines = []
        self.say = say

    def emit(self, key: str, message: str) -> None:
        # One line per message, whatever the message holds: the plugin reads lines.
        self.lines.append(f"{key}={printable(' '.join(message.split()))}")

    def note(self, message: str) -> None:
        self.say(printable(message))
        self.emit("log.INFO", message)

    def warn(self, message: str) -> None:
        self.say(printable(message))
        self.emit("log.WARNING", message)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def run(callback: str, root: str, action: str, nevra: str, pid: str, *, require: bool = False,
        settings_file: str = DEFAULT_FILE, say=lambda message: None) -> str:
    """Handle one actions-plugin callback; return the lines for stdout. Never raises."""
    out = _Protocol(say)
    fail = "stop" if callback == "goal_resolved" else "error"
    if callback not in CALLBACKS or not pid.isdigit():
        out.emit(fail, MSG_BAD_CALL % (callback, pid))
        return out.text
    if action not in INBOUND:
        return out.text  # a package going out: never our business
    if (not settings_file.startswith("/") or ".." in settings_file.split("/")
            or not settings_file.isprintable()):  # it is named in dnf 5's output and log
        out.emit(fail, MSG_BAD_SETTINGS % settings_file)
        return out.text
    paths = _paths(root, settings_file)
    from . import hook  # only now: a package going out never pays for the library

    failed, unexpected = hook.MSG_FAILED, hook.MSG_UNEXPECTED
    if callback == "post_transaction":
        failed = unexpected = hook.MSG_NOT_RECORDED
    try:
        if callback == "goal_resolved":
            _goal_resolved(out, paths, nevra, require)
        elif callback == "pre_transaction":
            _pre_transaction(out, paths, nevra, pid, require)
        else:
            _post_transaction(paths, pid)
    except OnedeskError as exc:
        message = str(exc)  # the library's own refusals already say who speaks
        out.emit(fail, message if message.startswith(PREFIX) and failed == hook.MSG_FAILED
                 else failed % message)
    except Exception as exc:  # one line, never a traceback on dnf 5's terminal
        out.emit(fail, unexpected % type(exc).__name__)
    return out.text


def _paths(root: str, settings_file: str) -> Paths:
    """As the dnf 4 plugin's: the settings file and the state inside the installroot."""
    return Paths.inside(root, settings_file)


# --- goal_resolved --------------------------------------------------------------------------

def _goal_resolved(out: _Protocol, paths: Paths, nevra: str, require: bool) -> None:
    from . import hook

    out.note(hook.MSG_TRIGGERED % nevra)
    present, refusal = _check(out, paths, require, notes=True)
    if refusal:
        out.emit("stop", refusal)
    elif not present:
        out.note(hook.MSG_NO_ENTRIES % paths.settings)


def _check(out: _Protocol, paths: Paths, require: bool, notes: bool):
    """The dnf 4 plugin's `resolved` check: (any entries at all, the refusal or None).

    The library call of goal_resolved (and of pre_transaction's re-check).
    """
    from . import hook

    result = hook.preflight(paths, require)
    if not result.present:
        return False, (hook.MSG_NO_ENTRIES_REQUIRED % paths.settings) if result.blocking else None
    if notes:
        for finding in result.notes:  # warnings (an expiry within 30 days) at warning level
            tell = out.warn if finding.severity == "warning" else out.note
            tell(hook.MSG_NOTE % finding.describe(paths.settings))
        for finding in result.alerts:  # a passed expiry: loud, never a stop
            out.warn(hook.alert(paths, finding))
    if result.blocking:
        return True, hook.blocking_message(paths, result.blocking, paths.root)
    return True, None


# --- pre_transaction ------------------------------------------------------------------------

def _pre_transaction(out: _Protocol, paths: Paths, nevra: str, pid: str, require: bool) -> None:
    from . import hook

    _remove_stale_handoffs(paths, keep=pid)
    # The file may have changed since goal_resolved: check again before repairing.
    present, refusal = _check(out, paths, require, notes=False)
    if refusal:
        out.emit("error", refusal)
        return
    if not present:
        return  # no entries (and not required): nothing to repair or record
    repaired, values = _prepare(paths)
    for finding in repaired:
        out.note(hook.MSG_REPAIRED % (finding.code, paths.settings))
    packages = _hand_off(paths, pid, values, nevra)
    out.note(hook.MSG_VALIDATED % (paths.settings, ", ".join(packages)))


def _prepare(paths: Paths):
    """`check --fix`'s repairs: (the repairs, the values as the install scripts will read
    them). The library call of pre_transaction."""
    from . import hook

    return hook.inject(paths)


def _hand_off(paths: Paths, pid: str, values: dict, nevra: str) -> list:
    """The record post_transaction makes the applied state: the dnf 4 plugin's own call,
    `hook.record`, into this run's hand-off directory. Returns its packages."""
    from . import hook, state

    _make_handoff_parents(paths)
    handoff = _handoff_dir(paths, pid)
    # Several trigger packages mean one call each: the record lists them all.
    earlier = state.load_applied(handoff) if os.path.isdir(handoff) else None
    packages = sorted(set((earlier or {}).get("packages", [])) | {nevra})
    hook.record(paths._replace(state_dir=handoff), values, packages)
    return packages


# --- post_transaction -----------------------------------------------------------------------

def _post_transaction(paths: Paths, pid: str) -> None:
    _record(paths, _handoff_dir(paths, pid))


def _record(paths: Paths, handoff: str) -> None:
    """Make pre_transaction's record the applied state: one atomic rename, under the lock."""
    from . import state
    from .fsutil import describe_oserror, fsync_directory

    source = os.path.join(handoff, state.APPLIED_FILE)
    if not os.path.exists(source):
        return  # pre_transaction found no entries: nothing was applied
    target = os.path.join(paths.state_dir, state.APPLIED_FILE)
    with state.locked(paths.state_dir):
        try:
            os.rename(source, target)
            fsync_directory(paths.state_dir)
        except OSError as exc:
            raise StateError(describe_oserror(target, "write", exc)) from None
    _remove(handoff)


# --- the hand-off between pre_transaction and post_transaction ------------------------------

def _handoff_dir(paths: Paths, pid: str) -> str:
    """``<state>/dnf5-pending/<pid>``: the hand-off of the dnf 5 process ``pid``."""
    return os.path.join(paths.state_dir, HANDOFF_DIR, pid)


def _make_handoff_parents(paths: Paths) -> None:
    """The state directory and ``dnf5-pending``, mode 0700 (record_applied's makedirs
    would give a missing parent the default mode)."""
    from .fsutil import describe_oserror

    top = os.path.join(paths.state_dir, HANDOFF_DIR)
    try:
        os.makedirs(paths.state_dir, mode=0o700, exist_ok=True)
        os.makedirs(top, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StateError(describe_oserror(top, "create the directory", exc)) from None


def _remove_stale_handoffs(paths: Paths, keep: str) -> None:
    """Hand-offs of dnf 5 runs that stopped after pre_transaction. One rpm transaction runs
    at a time in a root, so every other one is stale."""
    top = os.path.join(paths.state_dir, HANDOFF_DIR)
    try:
        names = os.listdir(top)
    except FileNotFoundError:
        return
    except OSError as exc:
        from .fsutil import describe_oserror

        raise StateError(describe_oserror(top, "read", exc)) from None
    for name in names:
        if name != keep:
            _remove(os.path.join(top, name))


def _remove(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(directory))  # only when it is empty
    except OSError:
        pass
