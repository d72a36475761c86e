"""The rpm and dnf commands, run in a root (their Python modules are not used: the CLI
may run from a virtualenv)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import namedtuple
from collections.abc import Sequence

from .errors import OnedeskError

ONEDESK_PACKAGES = ("onedesk-db-utils", "onedesk-webapps", "onedesk-microservices",
                    "onedesk-customerapps")
DB_UTILS = ONEDESK_PACKAGES[0]
DNF_ENV = "ONEDESK_AZUREAD_DNF"
# %{EPOCH} only when the package has one, as dnf prints it.
NEVRA_FORMAT = "%{NAME} %{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}.%{ARCH}\\n"


class Completed(namedtuple("Completed", "argv returncode stdout stderr")):
    """A finished rpm or dnf command."""

    __slots__ = ()
    # argv: list[str]
    # returncode: int
    # stdout: str
    # stderr: str

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
