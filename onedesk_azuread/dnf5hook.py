"""What dnf 5's actions plugin runs in a transaction that installs OneDesk.

dnf 5 does not load dnf 4 plugins. Its actions plugin (libdnf5-plugin-actions)
reads ``/etc/dnf/libdnf5-plugins/actions.d/onedesk_azuread.actions``, whose
lines run ``onedesk-azuread-dnf5-hook --root=INSTALLROOT CALLBACK ...`` (``main``)
only for the trigger package coming into the system (install, reinstall, upgrade,
downgrade), on the host side, never chrooted. The hook answers in the plugin's
plain protocol on stdout, one line each: ``stop=MESSAGE`` stops dnf 5 (in
``goal_resolved``: before anything is downloaded), ``error=MESSAGE`` fails the
action (with ``raise_error=1`` dnf 5 stops; in ``pre_transaction`` nothing is
installed), ``log.LEVEL=MESSAGE`` goes to dnf5.log. What a person should read
goes to stderr too (``say``): dnf 5 leaves the action's stderr on the terminal.

The three callbacks do what the dnf 4 plugin's three hooks do, through the
same decisions (``hook``), each in one small function below:

- ``goal_resolved``: the check before anything is downloaded (``hook.verdict``);
- ``pre_transaction``: the re-check and ``check --fix``'s repairs just before
  the packages are installed (``_prepare``). No action can hand variables to
  the install scripts (they run in rpm's chroot with dnf 5's environment), so
  the scripts read the file this step left validated and canonical;
- ``post_transaction``: the applied-state record (``_record``).

How post_transaction knows what pre_transaction validated: pre_transaction
writes the applied-state record of exactly the pair it validated, with the
trigger NEVRAs, as a hand-off under the state directory; post_transaction
renames it over ``applied.json``. Nothing passes through the actions plugin's
``tmp.*`` variables (a missing one makes dnf 5 skip the action silently) or
the command line (``ps`` shows it to every user), and re-reading the file after
the install would record whatever it holds then, not what the scripts read.

The hand-off is named after the dnf 5 run, not its pid alone (``${pid}``, the
same in every callback of one run, repeats after a reboot and in every new
container): the pid, the process's start time (/proc/PID/stat) and the boot
(/proc/sys/kernel/random/boot_id). A transaction that fails after
pre_transaction never runs post_transaction: its hand-off is never adopted by a
later run, whatever its pid, and the next pre_transaction removes it. A
post_transaction that finds no hand-off of its own run records nothing and
says so (a warning: the packages are installed, and dnf 5 has nothing to undo).

Everything under the state directory is reached through descriptors opened
without following links (``dir_fd=``, ``O_NOFOLLOW``): a symlink, a
non-directory or a directory of another user there is refused in one line,
never followed, and a stale hand-off is removed file by file inside its own
directory, never below or beside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections import namedtuple

from . import fsutil, hook, streams
from .errors import StateError
from .paths import DEFAULT_FILE, Paths
from .trust import printable

CALLBACKS = ("goal_resolved", "pre_transaction", "post_transaction")
# ${pkg.action} of a package coming in: install, upgrade, downgrade, reinstall.
# The shipped lines filter on direction `in` already; this keeps a removal
# unblocked even if someone edits the direction away.
INBOUND = ("I", "U", "D", "R")
HANDOFF_DIR = "dnf5-pending"
# What tells one dnf 5 run from another that had the same pid (field 22 of stat: start time).
PROC_STAT = "/proc/{pid}/stat"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

MSG_BAD_CALL = ("onedesk-azuread: dnf5-hook: unknown callback %r or bad ${pid} %r; "
                "restore the shipped onedesk_azuread.actions")
MSG_BAD_SETTINGS = "onedesk-azuread: onedesk_azuread.actions: %s; nothing was installed"
MSG_NO_IDENTITY = ("onedesk-azuread: cannot tell this dnf 5 run (pid %s) from an earlier one with "
                   "the same pid (%s), so what it installs is not recorded as applied and "
                   "`onedesk-azuread status` will not say \"in sync\"; run dnf 5 with /proc "
                   "mounted")
MSG_NO_HANDOFF = ("onedesk-azuread: nothing was recorded as applied: %s holds no hand-off of this "
                  "dnf 5 run (%s)%s; `onedesk-azuread status` will not say \"in sync\" until: "
                  "onedesk-azuread%s apply")
MSG_OTHER_RUNS = ", only of another run: %s"
MSG_NOT_OURS = ("onedesk-azuread: %s: is %s, which onedesk-azuread never makes and never "
                "follows; remove it (rm -r %s) and run dnf again")


class Call(namedtuple("Call", "callback root action nevra pid require settings_file",
                      defaults=(False, DEFAULT_FILE))):
    """One actions-plugin callback, as the actions file's command line gives it."""

    __slots__ = ()
    # callback: str; goal_resolved, pre_transaction or post_transaction
    # root: str; the installroot (${conf.installroot})
    # action: str; ${pkg.action}: I, U, D, R coming in
    # nevra: str; ${pkg.nevra}
    # pid: str; dnf 5's (${pid}), digits
    # require: bool; stop when the settings file has no Azure AD entries at all
    # settings_file: str; the settings file, inside the installroot


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

    def tell(self, level: str, message: str) -> None:
        """One of hook's (level, message) pairs."""
        (self.warn if level == hook.WARNING else self.note)(message)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def run(call: Call, say=lambda message: None) -> str:
    """Handle one actions-plugin callback; return the lines for stdout. Never raises."""
    callback, root, action, nevra, pid, require, settings_file = call
    out = _Protocol(say)
    fail = "stop" if callback == "goal_resolved" else "error"
    if callback not in CALLBACKS or not pid.isdigit():
        out.emit(fail, MSG_BAD_CALL % (callback, pid))
        return out.text
    if action not in INBOUND:
        return out.text  # a package going out: never our business
    problem = hook.settings_path_problem(settings_file, "--settings=", settings_file)
    if problem:
        out.emit(fail, MSG_BAD_SETTINGS % problem)
        return out.text
    paths = _paths(root, settings_file)
    try:
        if callback == "goal_resolved":
            _goal_resolved(out, paths, nevra, require)
        elif callback == "pre_transaction":
            _pre_transaction(out, paths, nevra, pid, require)
        else:
            _post_transaction(out, paths, pid)
    except Exception as exc:  # one line, never a traceback on dnf 5's terminal
        out.emit(fail, hook.failure_line(exc, recording=callback == "post_transaction"))
    return out.text


def _paths(root: str, settings_file: str) -> Paths:
    """As the dnf 4 plugin's: the settings file and the state inside the installroot."""
    return Paths.inside(root, settings_file)


# --- goal_resolved --------------------------------------------------------------------------

def _goal_resolved(out: _Protocol, paths: Paths, nevra: str, require: bool) -> None:
    """The dnf 4 plugin's `resolved` check, before anything is downloaded."""
    out.note(hook.MSG_TRIGGERED % nevra)
    verdict = hook.verdict(paths, require)
    for level, message in verdict.said:
        out.tell(level, message)
    if verdict.stop:
        out.emit("stop", verdict.stop)


# --- pre_transaction ------------------------------------------------------------------------

def _pre_transaction(out: _Protocol, paths: Paths, nevra: str, pid: str, require: bool) -> None:
    identity = _identity(out, pid)
    with _handoffs(paths, create=True) as (_state, pending):
        _remove_stale_handoffs(paths, pending, keep=identity)
        own = None
        if identity is not None:
            own = _open_private(pending, identity, _handoff_path(paths, identity), create=True)
        try:
            # The file may have changed since goal_resolved: check again before repairing
            # (what there is to say, goal_resolved said).
            verdict = hook.verdict(paths, require)
            if verdict.stop:
                out.emit("error", verdict.stop)
                return
            if not verdict.present:
                return  # no entries (and not required): nothing to repair or record
            repaired, values = _prepare(paths)
            for finding in repaired:
                out.note(hook.MSG_REPAIRED % (finding.code, paths.settings))
            packages = [nevra] if own is None else _hand_off(paths, identity, own, values, nevra)
            out.note(hook.MSG_VALIDATED % (paths.settings, ", ".join(packages)))
        finally:
            if own is not None:
                os.close(own)


def _prepare(paths: Paths):
    """`check --fix`'s repairs: (the repairs, the values as the install scripts will read
    them). The library call of pre_transaction."""
    return hook.inject(paths)


def _hand_off(paths: Paths, identity: str, own: int, values: dict, nevra: str) -> list:
    """The record post_transaction makes the applied state (the one the dnf 4 plugin's
    `hook.record` writes), into this run's hand-off directory ``own``. Returns its packages."""
    from . import CLIENT_ID, SECRET, state

    shown = _handoff_path(paths, identity)
    # Several trigger packages mean one call each: the record lists them all.
    earlier = state.load_applied(shown, dir_fd=own)
    packages = sorted(set((earlier or {}).get("packages", [])) | {nevra})
    if CLIENT_ID in values and SECRET in values:
        record = state.applied_record(values[CLIENT_ID], values[SECRET], packages)
        _write(own, state.APPLIED_FILE, state.encode(record), shown)
    return packages


# --- post_transaction -----------------------------------------------------------------------

def _post_transaction(out: _Protocol, paths: Paths, pid: str) -> None:
    identity = _identity(out, pid)
    if identity is None:
        return  # said: nothing is recorded
    with _handoffs(paths, create=False) as (top, pending):
        own = None
        if pending is not None:
            own = _open_private(pending, identity, _handoff_path(paths, identity), create=False)
        if own is None:
            others = sorted(os.listdir(pending)) if pending is not None else []
            out.warn(MSG_NO_HANDOFF % (
                _pending_path(paths), identity,
                MSG_OTHER_RUNS % ", ".join(others) if others else "", hook.with_root(paths)))
            return
        try:
            _record(paths, identity, own, top)
        finally:
            os.close(own)


def _record(paths: Paths, identity: str, own: int, top: int) -> None:
    """Make pre_transaction's record the applied state: one atomic rename, under the lock.
    The emptied hand-off stays until the next pre_transaction: a second trigger package's
    post_transaction then finds it, with nothing left to record."""
    from . import state
    from .fsutil import describe_oserror

    shown = _handoff_path(paths, identity)
    if state.load_applied(shown, dir_fd=own) is None:  # refused unless a record of ours
        return  # pre_transaction found no entries, or an earlier call of this run recorded
    target = os.path.join(paths.state_dir, state.APPLIED_FILE)
    try:
        os.rename(state.APPLIED_FILE, state.APPLIED_FILE, src_dir_fd=own, dst_dir_fd=top)
        os.fsync(top)
    except OSError as exc:
        raise StateError(describe_oserror(target, "write", exc)) from None


# --- the hand-off between pre_transaction and post_transaction ------------------------------

def _identity(out: _Protocol, pid: str) -> str | None:
    """This dnf 5 run's name: ``PID-STARTTIME-BOOTID``; None (and said) when /proc cannot
    tell. A pid alone is no identity: pids repeat after a reboot and in every new container,
    and a hand-off of an earlier run must never pass for this run's."""
    from .fsutil import describe_oserror

    path = PROC_STAT.format(pid=pid)
    try:
        with open(path, "rb") as handle:
            line = handle.read()
        with open(BOOT_ID, "rb") as handle:
            boot = handle.read().decode("ascii").strip()
        # The command name (field 2) may hold spaces and ")": count from its last ")".
        start = line[line.rindex(b")") + 2:].split()[19].decode("ascii")
    except OSError as exc:
        out.warn(MSG_NO_IDENTITY % (pid, describe_oserror(exc.filename or path, "read", exc)))
        return None
    except (ValueError, IndexError):
        start = boot = ""
    if not (start.isdigit() and len(boot) == 36 and set(boot) <= set("0123456789abcdef-")):
        out.warn(MSG_NO_IDENTITY % (pid, f"{path} or {BOOT_ID}: not what Linux writes"))
        return None
    return f"{pid}-{start}-{boot}"


def _pending_path(paths: Paths) -> str:
    return os.path.join(paths.state_dir, HANDOFF_DIR)


def _handoff_path(paths: Paths, identity: str) -> str:
    """``<state>/dnf5-pending/<identity>``: the hand-off of one dnf 5 run (for messages; the
    directory itself is only ever reached through descriptors)."""
    return os.path.join(paths.state_dir, HANDOFF_DIR, identity)


@contextlib.contextmanager
def _handoffs(paths: Paths, create: bool):
    """Under the tool's lock: (the state directory, ``dnf5-pending`` or None when absent and
    not ``create``), both held open, checked, never reached through a link."""
    from . import state
    from .fsutil import open_private_directory

    with state.locked(paths.state_dir):
        top = open_private_directory(paths.state_dir, StateError, create=True)
        try:
            pending = _open_private(top, HANDOFF_DIR, _pending_path(paths), create)
            try:
                yield top, pending
            finally:
                if pending is not None:
                    os.close(pending)
        finally:
            os.close(top)


def _open_private(parent: int, name: str, shown: str, create: bool) -> int | None:
    """The directory ``name`` in ``parent``, made mode 0700 if ``create``: a descriptor,
    or None when absent. Anything but our own private directory is refused (MSG_NOT_OURS)."""
    from .fsutil import describe_oserror

    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError as exc:
        if create:
            raise StateError(describe_oserror(shown, "create the directory", exc)) from None
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StateError(MSG_NOT_OURS % (shown, _kind(parent, name), shown)) from None
        raise StateError(describe_oserror(shown, "open the directory", exc)) from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise StateError(MSG_NOT_OURS % (
                shown, f"a directory of uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}",
                shown))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(parent: int, name: str) -> str:
    """What ``name`` in ``parent`` is, for a refusal: never followed."""
    try:
        mode = os.lstat(name, dir_fd=parent).st_mode
    except OSError:
        return "not a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a directory" if stat.S_ISDIR(mode) else "not a directory"


def _write(directory: int, name: str, data: bytes, shown: str) -> None:
    """Replace ``name`` in ``directory`` atomically with ``data``, mode 0600."""
    from .fsutil import describe_oserror

    temporary = f".{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)  # a killed writer's, under our lock
        fd = os.open(temporary, flags, 0o600, dir_fd=directory)
        try:
            os.fchmod(fd, 0o600)
            fsutil.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        os.fsync(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        raise StateError(describe_oserror(os.path.join(shown, name), "write", exc)) from None


def _remove_stale_handoffs(paths: Paths, pending: int, keep: str | None) -> None:
    """Hand-offs of dnf 5 runs that stopped after pre_transaction. One rpm transaction runs
    at a time in a root, so every one but this run's is stale."""
    from .fsutil import describe_oserror

    try:
        names = os.listdir(pending)
    except OSError as exc:
        raise StateError(describe_oserror(_pending_path(paths), "read", exc)) from None
    for name in names:
        if name != keep:
            _remove_handoff(pending, name, os.path.join(_pending_path(paths), name))


def _remove_handoff(pending: int, name: str, shown: str) -> None:
    """Delete one hand-off: the files in it, through its own descriptor, then the directory.
    A hand-off holds only files: anything else in it is refused, so the delete never goes
    below the directory it started in, nor through a link out of it."""
    from .fsutil import describe_oserror

    fd = _open_private(pending, name, shown, create=False)
    if fd is None:
        return
    try:
        with os.scandir(fd) as entries:
            names = [(entry.name, entry.is_file(follow_symlinks=False)) for entry in entries]
        for entry, is_file in names:  # all checked before anything is deleted
            if not is_file:
                inner = os.path.join(shown, entry)
                raise StateError(MSG_NOT_OURS % (inner, _kind(fd, entry), inner))
        for entry, _ in names:
            os.unlink(entry, dir_fd=fd)
        os.rmdir(name, dir_fd=pending)
    except OSError as exc:
        raise StateError(describe_oserror(shown, "remove", exc)) from None
    finally:
        os.close(fd)


# --- the command the actions file runs -------------------------------------------------------

# The command line is the actions file's, so it is read by hand, not with argparse: on
# Python 3.14 (Debian sid's, as Fedora 43's) argparse imports _colorize, dataclasses and
# inspect. Measured in the dnf 5 test bed's sid root, best of 15 fresh interpreters:
# argparse 10 ms, half the 20 ms of the whole library the hook needs (click: 38 ms), and
# dnf 5 starts the hook three times in every OneDesk transaction.
USAGE = ("usage: onedesk-azuread-dnf5-hook [--root=DIR] [--require=0|1] [--settings=PATH] "
         "CALLBACK ACTION NEVRA PID")
HELP = """What dnf 5's actions plugin runs (onedesk_azuread.actions): one callback
(goal_resolved, pre_transaction or post_transaction) for a package coming in, answered
in the actions plugin's lines on stdout.

  --root=DIR       the installroot (${conf.installroot})
  --require=0|1    stop when the settings file has no Azure AD entries at all
  --settings=PATH  the settings file, inside the installroot (default: /root/.OneDesk)"""
_OPTIONS = {"--root": "root", "--require": "require", "--settings": "settings_file"}
# click.BOOL's words: the hidden `onedesk-azuread dnf5-hook` took --require through it.
_BOOLEANS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True,
             "0": False, "false": False, "f": False, "no": False, "n": False, "off": False}


class _Usage(Exception):
    """A command line the actions file would never give."""


def _parse(argv: list[str]) -> Call:
    """The call: options ``--name=value`` or ``--name value``, CALLBACK ACTION NEVRA PID."""
    options = {"root": "/", "require": "0", "settings_file": DEFAULT_FILE}
    arguments = []
    words = iter(argv)
    for word in words:
        if not word.startswith("--"):
            arguments.append(word)
            continue
        name, equals, value = word.partition("=")
        if name not in _OPTIONS:
            raise _Usage(f"no such option: {name}")
        if not equals:
            value = next(words, None)
            if value is None:
                raise _Usage(f"option {name} requires a value")
        options[_OPTIONS[name]] = value
    if options["require"].strip().lower() not in _BOOLEANS:
        raise _Usage(f"--require={options['require']!r} is not a valid boolean")
    options["require"] = _BOOLEANS[options["require"].strip().lower()]
    if len(arguments) != 4:
        raise _Usage("give CALLBACK ACTION NEVRA PID")
    callback, action, nevra, pid = arguments
    return Call(callback, options["root"], action, nevra, pid, options["require"],
                options["settings_file"])


def _say(message: str) -> None:
    """A message for the person at the terminal: dnf 5 leaves the action's stderr there."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``onedesk-azuread-dnf5-hook``: one callback, its lines on stdout; 2 on a usage error
    (with raise_error=1 dnf 5 stops). No click: dnf 5 starts it three times in every OneDesk
    transaction (`make bench`, the dnf 5 figure)."""
    streams.prepare()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{HELP}")
        return 0 if streams.flush_stdout() else 1
    try:
        call = _parse(argv)
    except _Usage as exc:
        _say(f"{USAGE}\nonedesk-azuread-dnf5-hook: error: {exc}")
        return 2
    fsutil.set_notifier(_say)  # "waiting for the lock", "repaired the state directory"
    text = run(call, say=_say)
    with contextlib.suppress(OSError, ValueError):  # flush_stdout says it failed
        sys.stdout.write(text)
    return 0 if streams.flush_stdout() else 1


if __name__ == "__main__":
    sys.exit(main())
