"""Crash-safe file writing and locking, shared by the settings file and the tool's state."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator

from .errors import SettingsError


def describe_oserror(path: str, action: str, exc: OSError) -> str:
    """One line for an OSError: the file, what we tried, and the system's reason."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        reason += "; remount it read-write or use --file/--root elsewhere"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space and try again"
    return f"{path}: cannot {action}: {reason}"


@contextlib.contextmanager
def locked_directory(directory: str, error=SettingsError) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for a read-modify-write.

    The lock is on the directory rather than the file because the file is
    replaced by rename: a lock on the old inode would not exclude a writer
    that opened the new one. No lock file is left behind.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise error(describe_oserror(directory, "lock", exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_temp(directory: str, name: str, data: bytes, uid: int | None, gid: int | None,
               error=SettingsError) -> str:
    """Write ``data`` to a new mode-0600 temp file in ``directory``, fsynced; return its path."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise error(describe_oserror(os.path.join(directory, name), "write", exc)) from None
    try:
        try:
            os.fchmod(fd, 0o600)
            if uid is not None and os.geteuid() == 0:
                os.fchown(fd, uid, gid if gid is not None else -1)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(describe_oserror(os.path.join(directory, name), "write", exc)) from None
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


def replace_file(path: str, data: bytes, *, uid: int | None = None, gid: int | None = None,
                 backup: bytes | None = None, error=SettingsError) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600), keeping ``backup`` as ``path.bak``.

    Both temp files are complete and fsynced before either rename, so a
    failure before the renames changes nothing, and a crash at any moment
    leaves the old or the new file, never a partial one.
    """
    directory, name = os.path.split(os.path.abspath(path))
    new_tmp = write_temp(directory, name, data, uid, gid, error)
    bak_tmp = None
    try:
        if backup is not None:
            bak_tmp = write_temp(directory, name + ".bak", backup, uid, gid, error)
            os.rename(bak_tmp, path + ".bak")
            bak_tmp = None
        os.rename(new_tmp, path)
        new_tmp = None
        fsync_directory(directory)
    except OSError as exc:
        raise error(describe_oserror(path, "write", exc)) from None
    finally:
        for leftover in (new_tmp, bak_tmp):
            if leftover:
                with contextlib.suppress(OSError):
                    os.unlink(leftover)


def regular_file_or_absent(path: str, error=SettingsError) -> os.stat_result | None:
    """lstat ``path``: None when absent; an error for a symlink or anything not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(describe_oserror(path, "read", exc)) from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{path}: is a symbolic link; refusing to write through it "
                    f"(name the real file with --file)")
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not a settings file (name the file with --file)")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is not a regular file (name the settings file with --file)")
    return st
