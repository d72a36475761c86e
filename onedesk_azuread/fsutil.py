"""Files on disk, handled safely: opened without following a link or blocking, locked,
kept in private directories, and written crash-safe, keeping their SELinux label.

Shared by the settings file and the tool's state: what a file must be, and the words for
what it must not be, are the caller's (settings.py, state.py, journal.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import time
from collections import namedtuple
from collections.abc import Iterator

from .errors import SettingsError, StateError


def describe_oserror(path: str, action: str, exc: OSError) -> str:
    """One line for an OSError: the file, what we tried, and the system's reason."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        reason += "; remount it read-write or use --file/--root elsewhere"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space and try again"
    return f"{path}: cannot {action}: {reason}"


# --- Notices: one line for the user, from code that has no user interface -----------------

_notifier: list = []  # the function notices go to, if one was set


def set_notifier(function) -> None:
    """Send the library's one-line notices to ``function`` (the CLI's stderr, dnf's log)."""
    _notifier[:] = [function]


def notify(message: str) -> None:
    if _notifier:
        _notifier[0](message)
        return
    try:
        sys.stderr.write(f"onedesk-azuread: {message}\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # no stderr: a notice is not worth failing
        pass


# --- Opening a regular file: never through a link, never blocking ---------------------------

class Opened(namedtuple("Opened", "fd stat")):
    """A regular file open for reading, and what fstat said of it."""

    __slots__ = ()
    # fd: int; the caller closes it
    # stat: os.stat_result; of the open file, not of whatever the path names by now


class Opening(namedtuple("Opening", "error link not_regular directory action follow create "
                                    "check",
                         defaults=(None, "read", False, False, None))):
    """How ``open_regular`` opens a file, and what it says when it will not."""

    __slots__ = ()
    # error: type; the OnedeskError subclass raised
    # link: str | None; the refusal of a symlink (None: said as not_regular)
    # not_regular: str; the refusal of anything but a regular file
    # directory: str | None; the refusal of a directory, if it is said apart
    # action: str; what describe_oserror says was tried
    # follow: bool; follow a symlink (else it is refused, never opened)
    # create: bool; make the file, mode 0600, when it does not exist
    # check: Callable[[int, os.stat_result], None] | None; the caller's own refusals
    #   (owner, mode, size) or repairs, on the open file


def open_regular(path: str, how: Opening, dir_fd: int | None = None) -> Opened | None:
    """``path`` opened read-only and checked to be a regular file; None when it does not
    exist (with ``how.create``, it is made mode 0600 instead).

    Never blocks: a FIFO opened O_NONBLOCK returns at once and is then refused. Unless
    ``how.follow``, never follows a symlink, and looks before it opens (lstat), so that a
    FIFO, socket or device is refused without being opened. What is refused is said in
    the caller's words (``how.link``, ``how.directory``, ``how.not_regular``);
    ``how.check(fd, st)`` raises the caller's own refusals or repairs. Any other OSError
    is ``describe_oserror(path, how.action)``. With ``dir_fd``, the file is ``path``'s
    last component in that directory (``path`` names it in messages).
    """
    error, link, not_regular, directory, action, follow, create, check = how
    name = path if dir_fd is None else os.path.basename(path)

    def refusal(st: os.stat_result) -> str:
        if stat.S_ISLNK(st.st_mode) and link is not None:
            return link
        return directory if stat.S_ISDIR(st.st_mode) and directory else not_regular

    if not follow:
        try:
            looked = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            raise error(describe_oserror(path, action, exc)) from None
        else:
            if not stat.S_ISREG(looked.st_mode):
                raise error(refusal(looked))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= (0 if follow else os.O_NOFOLLOW) | (os.O_CREAT if create else 0)
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        if create:
            raise error(describe_oserror(path, action, exc)) from None
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP and link is not None:  # swapped in since the lstat
            raise error(link) from None
        if exc.errno == errno.EISDIR and directory:
            raise error(directory) from None
        if exc.errno == errno.ENXIO and not follow:  # a socket, swapped in since the lstat
            raise error(not_regular) from None
        raise error(describe_oserror(path, action, exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(refusal(st))
        if check is not None:
            check(fd, st)
    except OSError as exc:
        os.close(fd)
        raise error(describe_oserror(path, action, exc)) from None
    except BaseException:
        os.close(fd)
        raise
    return Opened(fd, st)


def read_fd(fd: int, limit: int | None = None) -> bytes:
    """The rest of ``fd``: all of it, or at most ``limit`` + 1 bytes (one more than allowed
    shows a file that grew past ``limit``). Raises OSError."""
    chunks = []
    size = 0
    while limit is None or size <= limit:
        chunk = os.read(fd, 1 << 16 if limit is None else limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_private_file(path: str, limit: int, error, fix: str,
                      dir_fd: int | None = None) -> bytes | None:
    """The bytes of ``path``, at most ``limit``; None when it does not exist.

    Never follows a symlink, never blocks (open_regular), and refuses anything but
    a regular file of ours that only we can write, with a single name. ``fix`` ends
    every refusal. With ``dir_fd``, the file is ``path``'s last component in that
    directory (``path`` names it in messages).
    """
    def private(fd: int, st: os.stat_result) -> None:
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise error(f"{path}: is not a private file of {_whom()} (owner uid {st.st_uid}, "
                        f"mode {stat.S_IMODE(st.st_mode):04o}), so it cannot be trusted; {fix}")
        if st.st_nlink != 1:
            raise error(f"{path}: has {st.st_nlink} hard links, so it was not written by "
                        f"onedesk-azuread; {fix}")
        if st.st_size > limit:
            raise error(f"{path}: is {st.st_size} bytes, more than the {limit} bytes a "
                        f"state file can be; {fix}")

    opened = open_regular(path, Opening(
        error, link=f"{path}: is a symbolic link, which is never followed; {fix}",
        not_regular=f"{path}: is not a regular file; {fix}", check=private), dir_fd)
    if opened is None:
        return None
    try:
        data = read_fd(opened.fd, limit)
    except OSError as exc:
        raise error(describe_oserror(path, "read", exc)) from None
    finally:
        os.close(opened.fd)
    if len(data) > limit:  # it grew after the fstat
        raise error(f"{path}: is more than the {limit} bytes a state file can be; {fix}")
    return data


def _whom() -> str:
    return "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"


# --- The write lock --------------------------------------------------------------------------

LOCK_TIMEOUT_ENV = "ONEDESK_AZUREAD_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 10.0
LOCK_WAITING = ("waiting for the lock {path} (another onedesk-azuread or dnf is changing the "
                "settings)")
LOCK_TIMED_OUT = ("{path}: still locked after {seconds:g} s by {holder}; nothing was changed; "
                  "let it finish and try again (or wait longer with "
                  f"{LOCK_TIMEOUT_ENV}=SECONDS)")
LOCK_HOLDER = "another onedesk-azuread or dnf"
_POLL = 0.05

# lock path -> [pid, fd, depth]: the locks this process holds. flock excludes open file
# descriptions, not processes, so a second flock on a new fd of the same file in the same
# process would wait for itself; a nested `locked` only counts instead. The pid makes a
# forked child take the lock for itself rather than inherit the parent's count.
_held: dict = {}


def lock_timeout(error=StateError) -> float:
    """How long to wait for the lock: $ONEDESK_AZUREAD_LOCK_TIMEOUT seconds, or 10."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:  # also refuses nan and inf: never an unbounded wait
        raise error(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds from 0 to 3600; "
                    f"unset it or give for example {LOCK_TIMEOUT_ENV}=30")
    return seconds


def open_lock_file(path: str, error) -> int:
    """The lock file, created mode 0600; refused if it is anything but our own regular file.

    Opened read-only (flock needs no write access, and an existing lock file then
    works on a read-only file system), without following a symlink or blocking.
    """
    remove = "remove it (onedesk-azuread creates its lock file itself)"

    def ours(fd: int, st: os.stat_result) -> None:
        if st.st_uid != os.geteuid():
            raise error(f"{path}: is owned by uid {st.st_uid}, not by {_whom()}, so another "
                        f"user could hold it forever; remove it")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)

    return open_regular(path, Opening(
        error, link=f"{path}: is a symbolic link; refusing to lock through it: {remove}",
        not_regular=f"{path}: is not a regular file; {remove}", action="lock", create=True,
        check=ours)).fd


def held(path: str) -> bool:
    """Does another process hold the lock file ``path`` now? Asked without waiting and
    without following a link; a lock file that is absent or cannot be opened is not held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def try_lock(fd: int, path: str, error) -> bool:
    """flock ``fd`` exclusively if no one else holds it; False when someone does."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        raise error(describe_oserror(path, "lock", exc)) from None


def _acquire(fd: int, path: str, error) -> None:
    """flock ``fd``; if another process holds it, say so once and wait a bounded time."""
    if try_lock(fd, path, error):
        return
    seconds = lock_timeout(error)
    notify(LOCK_WAITING.format(path=path))
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise error(LOCK_TIMED_OUT.format(path=path, seconds=seconds,
                                              holder=_holder(fd)))
        time.sleep(min(_POLL, left))
        if try_lock(fd, path, error):
            return


def _holder(fd: int) -> str:
    """Who holds the flock on ``fd``'s file, from /proc/locks: "pid N (COMMAND)" if known."""
    try:
        st = os.fstat(fd)
        inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; "->" marks a waiter
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
                    pid = fields[4]
                    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
                        return f"pid {pid} ({comm.read().strip()})"
    except (OSError, ValueError):
        pass
    return LOCK_HOLDER


@contextlib.contextmanager
def locked(path: str, error=StateError) -> Iterator[None]:
    """Hold the exclusive lock on the lock file ``path``; reentrant within this process.

    A lock file rather than the data files: those are replaced by rename, and a
    lock on the old inode would not exclude a writer that opened the new one.
    The wait is bounded (LOCK_TIMED_OUT), so that a stuck process never hangs
    dnf or a script behind it.
    """
    key = os.path.abspath(path)
    mine = _held.get(key)
    if mine is not None and mine[0] == os.getpid():
        mine[2] += 1
        try:
            yield
        finally:
            mine[2] -= 1
        return
    fd = open_lock_file(key, error)
    try:
        _acquire(fd, key, error)
        _held[key] = [os.getpid(), fd, 1]
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing releases the lock


# --- A private directory, like systemd-tmpfiles' `d PATH 0700 root root` ----------------------

# What a loose state directory may hold that another user planted while it was open to them.
PLANTED = ("{path}: was open to other users ({wrong}); it is now mode 0700, owner {owner}, but "
           "holds what they may have planted: {entries}; onedesk-azuread trusts and follows none "
           "of it: remove {them} (rm -r {names}) and try again")
PLANTED_LINK = "{name} (a symbolic link)"
PLANTED_OWNER = "{name} (owned by uid {uid})"
PLANTED_MODE = "{name} (mode {mode:04o}, writable by others)"
PLANTED_LINKS = "{name} ({nlink} hard links)"
# Parents the tool creates (a fresh --root): never more open than this, whatever the umask.
PARENT_MODE = 0o755
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def private_directory(path: str, error=StateError, *, create: bool) -> bool:
    """Make sure ``path`` is a directory that only its owner (root) can use.

    Returns False when it does not exist (and ``create`` is false). A wrong mode,
    or (as root) a wrong owner, is repaired, like systemd-tmpfiles does, and
    said in one notice. A symlink, a non-directory, or a directory of another
    user that we cannot take over (not root) is refused: its content cannot be
    trusted, and it is not ours to change.
    """
    fd = open_private_directory(path, error, create=create)
    if fd is None:
        return False
    os.close(fd)
    return True


def open_private_directory(path: str, error=StateError, *, create: bool) -> int | None:
    """``private_directory``, returning a descriptor of the directory it checked (None when
    absent): what is then created, read or deleted in it goes through ``dir_fd=``, so that
    nothing swapped in on the path since is followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return None
        _make_directory(path, error)
        st = None
    except OSError as exc:
        raise error(describe_oserror(path, "read", exc)) from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise error(f"{path}: is a symbolic link; refusing to keep state through it: "
                    f"remove the link (the directory is created again when needed)")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is not a directory; move it away (the directory is created "
                    f"again when needed)")
    try:
        fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped in since the lstat
            raise error(f"{path}: is not a directory but a link or a file; move it away "
                        f"(the directory is created again when needed)") from None
        raise error(describe_oserror(path, "open the directory", exc)) from None
    try:
        _secure_open_directory(fd, path, error)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_parents(directory: str) -> None:
    """``mkdir -p directory``, each directory it creates mode 0755 at most: os.makedirs
    would give them 0777 less the umask, world-writable under umask 000. Raises OSError."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by a concurrent run in between
            os.mkdir(directory, PARENT_MODE)  # the umask can only take bits away


def _make_directory(path: str, error) -> None:
    try:
        make_parents(os.path.dirname(os.path.abspath(path)))
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass  # made by a concurrent run in between: checked like any other below
    except OSError as exc:
        raise error(describe_oserror(path, "create the directory", exc)) from None


def _secure_open_directory(fd: int, path: str, error) -> None:
    try:
        st = os.fstat(fd)
        euid = os.geteuid()
        wrong = []
        if st.st_uid != euid or (euid == 0 and st.st_gid != 0):
            if euid != 0:
                raise error(f"{path}: is owned by uid {st.st_uid}, not by uid {euid}; its "
                            f"content cannot be trusted: run as root (which repairs it) or "
                            f"remove it")
            wrong.append(f"owner {st.st_uid}:{st.st_gid}")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            wrong.append(f"mode {mode:04o}")
        if not wrong:
            return
        if euid == 0:
            os.fchown(fd, 0, 0)
        os.fchmod(fd, 0o700)
    except OSError as exc:
        raise error(describe_oserror(path, "repair the permissions of", exc)) from None
    owner = "root:root" if euid == 0 else f"uid {euid}"
    # Closed first, looked into after: nothing can be planted between the look and the close.
    planted = _planted(fd, path, error)
    if planted:
        names = [os.path.join(path, name) for name, _ in planted]
        raise error(PLANTED.format(path=path, wrong=", ".join(wrong), owner=owner,
                                   entries=", ".join(what for _, what in planted),
                                   them="it" if len(planted) == 1 else "them",
                                   names=" ".join(names)))
    notify(f"{path}: repaired the state directory ({', '.join(wrong)}): "
           f"now mode 0700, owner {owner}")


def _planted(fd: int, path: str, error) -> list:
    """What in the directory ``fd`` another user could have put or changed while it was
    open to them: (name, description) of each symlink, entry not ours, entry writable by
    group or others, and hard-linked file. Never followed: lstat through ``fd``."""
    euid = os.geteuid()
    found = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                shown = os.path.join(path, entry.name)
                if stat.S_ISLNK(st.st_mode):
                    found.append((entry.name, PLANTED_LINK.format(name=shown)))
                elif st.st_uid != euid:
                    found.append((entry.name, PLANTED_OWNER.format(name=shown, uid=st.st_uid)))
                elif st.st_mode & 0o022:
                    found.append((entry.name, PLANTED_MODE.format(
                        name=shown, mode=stat.S_IMODE(st.st_mode))))
                elif not stat.S_ISDIR(st.st_mode) and st.st_nlink != 1:
                    found.append((entry.name, PLANTED_LINKS.format(name=shown,
                                                                   nlink=st.st_nlink)))
    except OSError as exc:
        raise error(describe_oserror(path, "read", exc)) from None
    return found


# --- Writing a file anew: a complete, fsynced temp file, then one rename ---------------------

class Writing(namedtuple("Writing", "mode uid gid label error action",
                         defaults=(0o600, None, None, None, SettingsError, "write"))):
    """How a file is written anew, and what a failure says."""

    __slots__ = ()
    # mode: int; 0600 unless told
    # uid, gid: int | None; its owner, set when running as root (None: the writer's)
    # label: bytes | None; its SELinux label (selinux_label), set before the fsync, so
    #   that the file is never on disk without it
    # error: type; the OnedeskError subclass raised
    # action: str; what describe_oserror says was tried


PRIVATE = Writing()  # mode 0600, the writer's own, no label set


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_temp(directory: str, name: str, data: bytes, how: Writing = PRIVATE) -> str:
    """Write ``data`` to a new temp file in ``directory``, made as ``how`` says, fsynced;
    return its path."""
    mode, uid, gid, label, error, action = how
    try:
        import tempfile  # only writers pay for it (and random, which it imports), not `show`

        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise error(describe_oserror(os.path.join(directory, name), action, exc)) from None
    try:
        try:
            os.fchmod(fd, mode)
            if uid is not None and os.geteuid() == 0:
                os.fchown(fd, uid, gid if gid is not None else -1)
            if label is not None:
                _set_label(fd, label, os.path.join(directory, name), error)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(describe_oserror(os.path.join(directory, name), action, exc)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def remove_stale_temps(path: str) -> None:
    """Delete temp files a killed writer left beside ``path``. Call only under the lock:
    then no live writer owns one."""
    directory, name = os.path.split(os.path.abspath(path))
    prefixes = (f".{name}.", f".{name}.bak.")
    try:
        leftovers = [entry for entry in os.listdir(directory)
                     if entry.startswith(prefixes) and entry.endswith(".tmp")]
    except OSError:
        return
    for entry in leftovers:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, entry))


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes, how: Writing = PRIVATE, *,
                 backup: bytes | None = None) -> None:
    """Atomically replace ``path`` with ``data`` (made as ``how`` says: mode 0600 unless
    told), keeping ``backup`` as ``path.bak``.

    Both files keep ``path``'s SELinux label, if it has one (selinux_label).
    Both temp files are complete and fsynced before either rename, so a
    failure before the renames changes nothing, and a crash at any moment
    leaves the old or the new file, never a partial one.
    """
    directory, name = os.path.split(os.path.abspath(path))
    # The backup holds the old content: it keeps the label too, with the file's owner.
    how = how._replace(label=selinux_label(path, how.error))
    new_tmp = write_temp(directory, name, data, how)
    bak_tmp = None
    try:
        if backup is not None:
            bak_tmp = write_temp(directory, name + ".bak", backup,
                                 how._replace(mode=0o600, action="write"))
            os.rename(bak_tmp, path + ".bak")
            bak_tmp = None
        os.rename(new_tmp, path)
        new_tmp = None
        fsync_directory(directory)
    except OSError as exc:
        raise how.error(describe_oserror(path, how.action, exc)) from None
    finally:
        for leftover in (new_tmp, bak_tmp):
            if leftover:
                with contextlib.suppress(OSError):
                    os.unlink(leftover)


# --- What a replaced file keeps: its SELinux label ----------------------------------------------
# A file written anew gets the label the policy gives new files there, not the old file's:
# on EL 9 and 10 (SELinux enforcing) a relabelled /root/.OneDesk would lose its label at the
# first write. Like GNU `sed -i`, the replacement (and the backup, the old content) gets the
# old file's `security.selinux` attribute; with no old file, or one without a label (SELinux
# off, a file system without labels), nothing is set and the kernel gives the policy default.
SELINUX_XATTR = "security.selinux"
_NO_XATTR = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)
LABEL_NOT_KEPT = "{path}: not changed: cannot give the new file the old one's SELinux label " \
                 "({reason}); nothing was written"


def selinux_label(path: str, error=SettingsError) -> bytes | None:
    """The ``security.selinux`` attribute of ``path`` (not through a symlink), or None when it
    has none or does not exist."""
    try:
        return os.getxattr(path, SELINUX_XATTR, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return None
        raise error(describe_oserror(path, "read the SELinux label of", exc)) from None


def _set_label(fd: int, label: bytes, path: str, error) -> None:
    try:
        os.setxattr(fd, SELINUX_XATTR, label)
    except OSError as exc:  # fail closed: a file that lost its label is a file OneDesk can't read
        raise error(LABEL_NOT_KEPT.format(path=path, reason=exc.strerror or exc)) from None


# --- Who else a POSIX ACL lets at a file -------------------------------------------------------
# system.posix_acl_access as the kernel stores it (linux/posix_acl_xattr.h): a little-endian
# u32 version (2), then entries of u16 tag, u16 permissions (r 4, w 2, x 1), u32 id.
ACL_XATTR = "system.posix_acl_access"
ACL_USER, ACL_GROUP, ACL_MASK = 0x02, 0x08, 0x10
_ACCESS = {4: "read", 2: "write", 6: "read and write"}


class AclGrant(namedtuple("AclGrant", "who access")):
    """A named user or group (not root) an ACL lets read or write a file."""

    __slots__ = ()
    # who: str; "user alice (uid 1000)", "group wheel (gid 10)"
    # access: str; "read", "write" or "read and write": what the entry allows under the mask


def acl_grants(fd: int, path: str, error=SettingsError) -> tuple[AclGrant, ...]:
    """Who, besides the owner and root, the file's POSIX ACL lets read or write it."""
    try:
        raw = os.getxattr(fd, ACL_XATTR)
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return ()
        raise error(describe_oserror(path, "read the ACL of", exc)) from None
    return parse_acl(raw)


def parse_acl(raw: bytes) -> tuple[AclGrant, ...]:
    import struct  # only a file with an ACL pays for it

    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return (AclGrant("an ACL this tool cannot read", _ACCESS[6]),)  # fail closed
    entries = [struct.unpack_from("<HHI", raw, offset) for offset in range(4, len(raw), 8)]
    mask = next((perm for tag, perm, _ in entries if tag == ACL_MASK), 7)
    grants = []
    for tag, perm, ident in entries:
        allowed = perm & mask
        if tag in (ACL_USER, ACL_GROUP) and ident != 0 and allowed & 6:
            grants.append(AclGrant(_who(tag, ident), _ACCESS[allowed & 6]))
    return tuple(grants)


def _who(tag: int, ident: int) -> str:
    import grp
    import pwd

    try:
        name = pwd.getpwuid(ident).pw_name if tag == ACL_USER else grp.getgrgid(ident).gr_name
    except KeyError:
        return f"uid {ident}" if tag == ACL_USER else f"gid {ident}"
    return f"user {name} (uid {ident})" if tag == ACL_USER else f"group {name} (gid {ident})"
