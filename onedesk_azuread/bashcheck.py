"""Ask bash itself whether a settings text parses (`bash -n`): the only place the library runs bash.

The text holds the secret, so it goes to bash on stdin (`bash -n /dev/stdin`,
which also makes bash print line numbers; where /dev/stdin is missing, as in a
chroot without /proc, plain `bash -n`, whose messages name no line), never on
the command line, and
bash's own echo of the failing source line is dropped: only the first line
of its message is kept, with any token that could be part of a value masked.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import namedtuple

from .errors import BashUnavailable, OnedeskError

TIMEOUT = 5.0  # seconds; bash -n on a settings file takes about 2 ms
# Where bash is looked for: the system's directories, not the caller's PATH.
SEARCH_PATH = "/usr/bin:/bin:/usr/local/bin"

_MESSAGE = re.compile(r"(?:/dev/stdin: line (\d+)|bash): (.*)")
# Tokens bash quotes in its messages that are safe to show: operators and reserved words.
_SAFE_TOKEN = re.compile(r"[;&|<>()\"'`{}\[\]!$-]{1,3}|newline|then|elif|else|fi|do|done|esac|"
                         r"in|if|case|for|while|until|select|function|\}|\]\]")


class Unparsable(namedtuple("Unparsable", "line message")):
    """bash's verdict on a text it cannot parse."""

    __slots__ = ()
    # line: int | None
    # message: str; bash's first line, without its file name and with values masked


def _mask(message: str) -> str:
    def one(match):
        token = match.group(1)
        return match.group(0) if _SAFE_TOKEN.fullmatch(token) else "`…'"
    return re.sub(r"`(.*?)'(?=[\s,;:]|$)", one, message)


def find_bash() -> str:
    for directory in SEARCH_PATH.split(":"):
        candidate = os.path.join(directory, "bash")
        if os.access(candidate, os.X_OK):
            return candidate
    raise BashUnavailable("bash is not installed (looked in " + SEARCH_PATH + "); it is needed "
                          "to check what OneDesk's install scripts will read: install bash")


class _stdin:  # noqa: N801 - used like a function: `with _stdin(data) as f`
    """The text as a seekable, memory-only file (memfd), or None for a pipe.

    bash reads a pipe one byte at a time (it must not read past its input),
    about 10x slower than a file; a memfd never touches a disk.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.file = None

    def __enter__(self):
        try:
            fd = os.memfd_create("onedesk-azuread-bash-n", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return None
        self.file = os.fdopen(fd, "w+b")
        self.file.write(self.data)
        self.file.seek(0)
        return self.file

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()


# bash's verdict on the last text it was asked about. A guarded dnf transaction asks about
# the same, unchanged file in `resolved` and again under the lock in `pre_transaction`;
# the answer depends on nothing but the text (a fixed PATH and locale), so it is asked once.
_last: list = []  # [(text, verdict)], at most one


def check(text: str) -> Unparsable | None:
    """None when bash parses ``text``; else where and why it does not."""
    if _last and _last[0][0] == text:
        return _last[0][1]
    verdict = _ask(text)
    _last[:] = [(text, verdict)]
    return verdict


def _ask(text: str) -> Unparsable | None:

    bash = find_bash()
    argv = ["bash", "-n", "/dev/stdin"] if os.path.exists("/dev/stdin") else ["bash", "-n"]
    data = text.encode("utf-8")
    try:
        with _stdin(data) as stdin:
            done = subprocess.run(argv, executable=bash, check=False, stdin=stdin,
                                  input=None if stdin is not None else data,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env={"PATH": SEARCH_PATH, "LC_ALL": "C"}, timeout=TIMEOUT,
                                  close_fds=True)
    except subprocess.TimeoutExpired:
        raise BashUnavailable(f"bash -n did not finish within {TIMEOUT:g} s; "
                              f"nothing was changed") from None
    except OSError as exc:
        raise BashUnavailable(f"bash could not be run ({exc.strerror}); nothing was changed") \
            from None
    # Not only the exit status: bash 5.2's `-n` reports an error inside [[ ]] ("conditional
    # binary operator expected") yet exits 0, while sourcing the same file stops there.
    for raw in done.stderr.decode("utf-8", "replace").splitlines():
        match = _MESSAGE.fullmatch(raw.strip())
        if match and not match.group(2).startswith("warning:"):
            line = int(match.group(1)) if match.group(1) else None
            return Unparsable(line, _mask(match.group(2)))
    if done.returncode == 0:
        return None
    if done.returncode in (126, 127):  # bash could not run or read its input: no verdict
        raise BashUnavailable(f"bash -n could not run (exit status {done.returncode}); "
                              f"nothing was changed")
    return Unparsable(None, f"bash -n failed (exit status {done.returncode})")


def refuse_unparsable(path: str, text: str) -> None:
    """Raise when bash would not parse ``text``, the new content for ``path``."""
    problem = check(text)
    if problem is not None:
        where = f"line {problem.line}: " if problem.line else ""
        raise OnedeskError(f"{path}: not changed: bash could not parse the result ({where}"
                           f"{problem.message}); fix the file by hand so that "
                           f"`bash -n {path}` passes, then run the command again")
