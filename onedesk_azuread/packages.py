"""The rpm and dnf commands, run in a root (their Python modules are not used: the CLI
may run from a virtualenv)."""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .errors import OnedeskError

ONEDESK_PACKAGES = ("onedesk-db-utils", "onedesk-webapps", "onedesk-microservices",
                    "onedesk-customerapps")
DB_UTILS = ONEDESK_PACKAGES[0]
DNF_ENV = "ONEDESK_AZUREAD_DNF"
# %{EPOCH} only when the package has one, as dnf prints it.
NEVRA_FORMAT = "%{NAME} %{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}.%{ARCH}\\n"


class Completed(NamedTuple):
    """A finished rpm or dnf command."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def last_error(self) -> str:
        """dnf's or rpm's own last words, for a one-line explanation."""
        lines = [line.strip() for line in (self.stderr + "\n" + self.stdout).splitlines()]
        errors = [line for line in lines if line.lower().startswith(("error", "problem"))]
        meaningful = errors or [line for line in lines if line]
        return meaningful[-1] if meaningful else f"exit status {self.returncode}"


def _run(argv: list[str]) -> Completed:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        raise OnedeskError(f"{argv[0]}: command not found; install it or set {DNF_ENV}") from None
    return Completed(argv, proc.returncode, proc.stdout, proc.stderr)


def dnf_command(root: str) -> list[str]:
    """The dnf command line: `dnf`, or what $ONEDESK_AZUREAD_DNF says, plus the installroot."""
    argv = shlex.split(os.environ.get(DNF_ENV) or "dnf")
    if os.path.abspath(root) != "/":
        argv.append(f"--installroot={os.path.abspath(root)}")
    return argv


def rpm_command(root: str) -> list[str]:
    argv = ["rpm"]
    if os.path.abspath(root) != "/":
        argv += ["--root", os.path.abspath(root)]
    return argv


def installed(root: str, names: Sequence[str] = ONEDESK_PACKAGES) -> dict[str, str | None]:
    """name -> installed NEVRA, or None when it is not installed."""
    result = _run(rpm_command(root) + ["-q", "--qf", NEVRA_FORMAT, *names])
    found: dict[str, str | None] = dict.fromkeys(names)
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in found:  # "package X is not installed" has 4 words
            found[parts[0]] = parts[1]
    return found


def dnf(root: str, *args: str) -> Completed:
    return _run(dnf_command(root) + list(args))


def query(root: str, *args: str) -> list[str]:
    """Lines of `dnf repoquery ARGS` (quiet); an error names dnf's own words."""
    result = dnf(root, "repoquery", "-q", *args)
    if result.returncode != 0:
        raise OnedeskError(f"dnf repoquery failed: {result.last_error()}")
    return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})


def dnf_live(root: str, *args: str, line: Callable[[str], None],
             wake_fd: int | None = None, on_wake: Callable[[], None] | None = None,
             pass_fds: Sequence[int] = ()) -> Completed:
    """`dnf ARGS`, its output (stdout and stderr, merged) passed to ``line`` as it comes.

    dnf runs in a session of its own, so a terminal's ^C or hangup never reaches it: the
    caller alone decides whether dnf may be interrupted. Its output goes to an unnamed
    temp file that the caller follows, not to a pipe: should the caller be killed, a
    pipe would break and dnf die of EPIPE at its next line, in the middle of its
    transaction; a file takes dnf's lines until dnf is done. ``on_wake`` is called when
    ``wake_fd`` (a signal wakeup pipe) becomes readable. If the caller is interrupted
    (an exception while waiting), dnf is stopped before the exception goes on.
    ``pass_fds`` stay open in dnf (a lock that must outlive a killed caller).
    """
    argv = dnf_command(root) + list(args)
    # dnf is Python: unbuffered, its lines arrive as it prints them, not in 8 KiB blocks.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    output: list[str] = []
    try:
        sink = tempfile.TemporaryFile()  # mode 0600, never linked into a directory
    except OSError as exc:
        raise OnedeskError(f"{tempfile.gettempdir()}: cannot create a file for dnf's output: "
                           f"{exc.strerror or exc}") from None
    with sink:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    pass_fds=tuple(pass_fds))
        except FileNotFoundError:
            raise OnedeskError(f"{argv[0]}: command not found; install it or set "
                               f"{DNF_ENV}") from None
        offset, pending = 0, b""
        try:
            while True:
                finished = proc.poll() is not None  # before reading: nothing comes after
                chunk = os.pread(sink.fileno(), 1 << 16, offset)
                if chunk:
                    offset += len(chunk)
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        output.append(_text(raw))
                        line(output[-1])
                    continue
                if finished:
                    break
                # A file is always "readable": wait a little, or for a signal.
                ready, _, _ = select.select([] if wake_fd is None else [wake_fd], [], [], 0.1)
                if ready:
                    _drain(wake_fd)
                    if on_wake is not None:
                        on_wake()
            if pending:
                output.append(_text(pending))
                line(output[-1])
        except BaseException:
            _stop(proc)
            raise
    return Completed(argv, proc.returncode, "\n".join(output) + "\n" if output else "", "")


def _text(raw: bytes) -> str:
    # Progress redraws end in \r: keep the last state of the line.
    return raw.decode("utf-8", errors="replace").rstrip("\r").rsplit("\r", 1)[-1]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """End dnf (and anything it started) after the caller was interrupted."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
