"""The standard streams of the tool's processes (the CLI's, the dnf 5 hook's), made safe to
use before anything else runs: a closed fd 0-2 is taken, no character fails an output, and a
stdout that cannot be written is an error, never a traceback or a silent success."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys

# How an fd that was closed when we started is filled: with /dev/null, opened the wrong way
# round, so that it is taken (a file we open later can never become fd 1, where a message
# or a child's output would land in it) and yet every read or write on it fails (EBADF), as
# on a closed fd. So output that could not be written is an error, never a silent success.
_STANDARD_FDS = ((0, "stdin", os.O_WRONLY, "r"), (1, "stdout", os.O_RDONLY, "w"),
                 (2, "stderr", os.O_WRONLY, "w"))


def fill_closed_standard_fds() -> list[int]:
    """Occupy closed fds 0-2 (see _STANDARD_FDS); return which were closed.

    A closed stderr gets a writable /dev/null: messages are lost either way, and
    failing to print one must not turn a done job into a failure.
    """
    closed = []
    for fd, name, flags, mode in _STANDARD_FDS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            closed.append(fd)
        opened = os.open(os.devnull, os.O_WRONLY if fd == 2 else flags)
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8",
                                errors="backslashreplace" if fd == 2 else "strict"))
    return closed


def flush_stdout() -> bool:
    """Flush stdout; if that fails, point fd 1 at a writable /dev/null so that what is left
    in the buffer is dropped at exit instead of failing again (`Exception ignored ...`)."""
    try:
        sys.stdout.flush()
        return True
    except (AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        return False


def _unencodable(exc: UnicodeEncodeError):
    """What stdout and stderr write for text their encoding cannot: the bytes of a name
    the locale could not decode, as they came (surrogateescape); any other character the
    locale cannot show (a "€" in ISO-8859-1, an "é" in ASCII) as \\u20ac or \\xe9, never
    a traceback."""
    bad = exc.object[exc.start:exc.end]
    if all("\udc80" <= c <= "\udcff" for c in bad):
        return codecs.lookup_error("surrogateescape")(exc)
    return codecs.lookup_error("backslashreplace")(exc)


def _never_fail_on_a_character() -> None:
    codecs.register_error("onedesk-azuread", _unencodable)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):  # not a TextIOWrapper
            stream.reconfigure(errors="onedesk-azuread")


def prepare() -> None:
    """Before anything else: fill closed fds 0-2, and never fail on a character."""
    fill_closed_standard_fds()
    _never_fail_on_a_character()
