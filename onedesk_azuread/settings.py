"""The settings file on disk: where it is, reading it, and locked, atomic, backed-up writes."""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from collections.abc import Callable

from . import KEYS, shellfile, state
from .errors import ParseError, SettingsError
from .fsutil import (
    Opening,
    Writing,
    acl_grants,
    describe_oserror,
    make_parents,
    open_regular,
    read_fd,
    remove_stale_temps,
    replace_file,
)

# A settings file that is no settings file: what to say, once for every reader and writer.
IS_DIRECTORY = "{path}: is a directory, not a settings file (name the file with --file)"
NOT_REGULAR = "{path}: is not a regular file (name the settings file with --file)"
NOT_THROUGH_LINK = ("{path}: is a symbolic link; refusing to write through it "
                    "(name the real file with --file)")


class Snapshot(namedtuple("Snapshot", "path data mode uid gid doc nlink acl",
                          defaults=(None, ()))):
    """The settings file as read at one moment."""

    __slots__ = ()
    # path: str
    # data: bytes | None; None when the file does not exist
    # mode: int | None
    # uid: int | None
    # gid: int | None
    # doc: shellfile.Document
    # nlink: int | None; its number of hard links (names)
    # acl: tuple[fsutil.AclGrant, ...]; whom its POSIX ACL lets read or write it

    @property
    def exists(self) -> bool:
        return self.data is not None


def decode(data: bytes, path: str) -> str:
    """The file's text; a one-line error naming the line for NUL bytes or bad UTF-8."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ParseError(f"{path}:{line}: contains a NUL byte; "
                         f"this is not a text settings file (restore it from {path}.bak?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(f"{path}:{line}: is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                         f"save the file as UTF-8") from None


def read(path: str, writing: bool = False) -> Snapshot:
    """Read and parse the settings file. A missing file reads as empty.

    A symlink is followed (the file may live elsewhere), unless ``writing``: the file is
    about to be replaced, and is then refused (NOT_THROUGH_LINK), never written through.
    """
    opened = open_regular(path, Opening(
        SettingsError, link=NOT_THROUGH_LINK.format(path=path) if writing else None,
        not_regular=NOT_REGULAR.format(path=path), directory=IS_DIRECTORY.format(path=path),
        follow=not writing))
    if opened is None:
        return Snapshot(path, None, None, None, None, shellfile.parse("", KEYS, path))
    fd, st = opened
    try:
        acl = acl_grants(fd, path)
        data = read_fd(fd)
    except OSError as exc:
        raise SettingsError(describe_oserror(path, "read", exc)) from None
    finally:
        os.close(fd)
    doc = shellfile.parse(decode(data, path), KEYS, path)
    return Snapshot(path, data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, doc,
                    st.st_nlink, acl)


def _ensure_directory(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        make_parents(os.path.dirname(directory))  # 0755 at most, whatever the umask
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise SettingsError(describe_oserror(directory, "create the directory", exc)) from None


class Edit(namedtuple("Edit", "text")):
    """The plainest result an ``update`` edit can return: the new text. Planners return
    records of their own with a ``text`` field, which ``update`` hands back."""

    __slots__ = ()


class Update(namedtuple("Update", "before written permissions_fixed edit")):
    """What a locked read-modify-write did."""

    __slots__ = ()
    # before: Snapshot
    # written: bool; the file's content changed
    # permissions_fixed: bool; mode or owner changed
    # edit: what ``edit`` returned (its ``text`` is what the file now holds)


HARD_LINKS = ("{path}: has {count} hard links; refusing to write: a chmod cannot protect the "
              "other name, and a rewrite would leave the old secret under it; remove the other "
              "link first (find it with: find / -xdev -samefile {path})")


ACL_REFUSED = ("{path}: has a POSIX ACL that lets {who} {access} it; refusing to write: the "
               "new file would either keep that access to the secret or silently drop what "
               "someone set; remove the ACL first (setfacl -b {path}), then run the command "
               "again")


def update(path: str, edit: Callable[[Snapshot], Edit], *, state_dir: str,
           fix_permissions: bool = False) -> Update:
    """Read-modify-write ``path`` under the tool's lock (``<state_dir>/lock``).

    ``edit`` gets the current snapshot and returns a record whose ``text`` is the
    new text (an ``Edit``, or a planner's record); it may raise to refuse. The
    record comes back in ``Update.edit``. Unchanged text writes nothing. A write
    keeps the old file as ``path.bak``, leaves mode 0600 and keeps the owner (root
    for a new file).
    ``fix_permissions`` also makes an unchanged file mode 0600 owned by root.
    A file with another name (hard link), or a POSIX ACL that lets anyone else read or
    write it, is never written or chmod-ed.
    """
    _ensure_directory(path)
    with state.locked(state_dir):
        before = read(path, writing=True)  # never through a symlink, never a special file
        if before.nlink is not None and before.nlink > 1:
            raise SettingsError(HARD_LINKS.format(path=path, count=before.nlink))
        if before.acl:
            grant = before.acl[0]
            raise SettingsError(ACL_REFUSED.format(path=path, who=grant.who,
                                                   access=grant.access))
        planned = edit(before)
        text = planned.text
        remove_stale_temps(path)
        data = text.encode("utf-8")
        uid = 0 if (fix_permissions or before.uid is None) else before.uid
        gid = 0 if (fix_permissions or before.gid is None) else before.gid
        if not before.exists and not data:
            return Update(before, False, False, planned)  # nothing to write, and no file to fix
        if before.exists and data == before.data:
            fixed = fix_permissions and _fix_permissions(path, before)
            return Update(before, False, fixed, planned)
        from . import bashcheck  # only writers ask bash here (not `show`)

        bashcheck.refuse_unparsable(path, text)  # like visudo: never install what bash rejects
        replace_file(path, data, Writing(uid=uid, gid=gid), backup=before.data)
        return Update(before, True, fix_permissions and (before.mode != 0o600 or before.uid != 0),
                      planned)


def _fix_permissions(path: str, before: Snapshot) -> bool:
    """Mode 0600, owner root, on the file in place (no content change)."""
    if before.mode == 0o600 and before.uid == 0 and before.gid == 0:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o600)
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SettingsError(describe_oserror(path, "change permissions of", exc)) from None
    return True
