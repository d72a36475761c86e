"""What the tool takes from files: configuration only root can change, and text made printable.

Standard library only, and cheap: the dnf plugin imports this module in a transaction
that installs OneDesk, before the rest of the library.

``root_only``: check.conf and the dnf plugin's configuration decide where the client
secret is sent and which file the install scripts are checked against, so they count
only when root alone can change them: the file and every directory on the way to it
(through every symlink, each checked where it lies) are root's and not writable by
group or others. A directory with the sticky bit (/tmp) is the one exception to the
mode rule: in it no one but root can rename or remove an entry that root owns, and every
entry on the path must be root's.

``printable``: a value echoed from a file (check.conf, the plugin's configuration, the
settings file) could hold a newline, a NUL (journald ends a line there too), a carriage
return or an escape sequence, and so start a journal line of its own with a priority of
its choosing, or rewrite the terminal. Every control character is shown escaped instead.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import namedtuple  # not typing.NamedTuple: 4-20 ms more for the dnf hooks

# C0 and C1 controls, DEL, and Unicode's own line and paragraph separators, as Python's
# repr writes them. Not the backslash: printable(printable(text)) == printable(text), so
# a message escaped where the value went in may be escaped again where it is printed.
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPES = {code: _SHORT.get(chr(code), f"\\x{code:02x}")
            for code in [*range(0x20), *range(0x7f, 0xa0)]}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``): one line that
    cannot start another, nor carry a `<N>` priority to the start of one (pure)."""
    return text.translate(_ESCAPES)


NOT_ROOT_ONLY = ("{path}: not used: {offender} {what} (owner uid {uid}, mode {mode:04o}), so "
                 "someone other than root could change what it says; make it root's alone: "
                 "{fix}")
FIX_FILE = "chown root:root {offender} && chmod go-w {offender}"
FIX_LINK = "chown -h root:root {offender}"
WHAT_OWNER = "is not owned by root"
WHAT_MODE = "is writable by group or others"
MAX_LINKS = 40  # as the kernel's path walk (ELOOP)


class NotRootOnly(namedtuple("NotRootOnly", "offender what st")):
    """The first file, directory or symlink on a path that someone else could change."""

    __slots__ = ()
    # offender: str; where it lies (symlinks not followed)
    # what: str; WHAT_OWNER or WHAT_MODE
    # st: os.stat_result; its lstat

    def message(self, path: str) -> str:
        return printable(NOT_ROOT_ONLY.format(
            path=path, offender=self.offender, what=self.what, uid=self.st.st_uid,
            mode=stat.S_IMODE(self.st.st_mode),
            fix=(FIX_LINK if stat.S_ISLNK(self.st.st_mode) else FIX_FILE).format(
                offender=self.offender)))


def _problem(st: os.stat_result) -> str | None:
    if st.st_uid != 0:
        return WHAT_OWNER
    if stat.S_ISLNK(st.st_mode):
        return None  # a symlink's own mode means nothing
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return WHAT_MODE
    return None


def root_only(path: str, top: str = "/") -> tuple[str, os.stat_result, NotRootOnly | None]:
    """Walk ``path`` from / as the kernel does, lstat-ing every directory, symlink and the
    file itself: (the real path, its lstat, None), or at the first one that is not root's
    alone, (its path, its lstat, why).

    ``top`` (a --root): its parents are the host's business and are not judged; a symlink
    that leads out of ``top`` is judged all the way. Raises OSError as the walk meets it
    (FileNotFoundError: the file or a directory on the way is absent; ELOOP).
    """
    above = set()
    parent = os.path.realpath(top)
    while parent != "/":
        parent = os.path.dirname(parent)
        above.add(parent)

    def judged(where: str, st: os.stat_result) -> NotRootOnly | None:
        what = None if where in above else _problem(st)
        return NotRootOnly(where, what, st) if what else None

    current = "/"
    st = os.lstat(current)
    pending = [name for name in reversed(path.split("/")) if name not in ("", ".")]
    links = 0
    while True:
        problem = judged(current, st)
        if problem or not pending:
            return current, st, problem
        name = pending.pop()
        if name == "..":
            current = os.path.dirname(current)  # a directory already walked through
            st = os.lstat(current)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), current)
        where = os.path.join(current, name)
        st = os.lstat(where)
        if stat.S_ISLNK(st.st_mode):
            problem = judged(where, st)
            if problem:
                return where, st, problem
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(where)
            pending.extend(part for part in reversed(target.split("/"))
                           if part not in ("", "."))
            if target.startswith("/"):
                current = "/"
            st = os.lstat(current)  # on from the link's directory, or from /
            continue
        current = where
