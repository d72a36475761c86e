"""What a package transaction that installs OneDesk does with the Azure AD entries.

Shared by the dnf 4 plugin (and any dnf 5 hook), which decide themselves, with
nothing but dnf, whether a transaction installs a trigger package. Here: check
the entries before anything is downloaded, repair them and hand them to the
install scripts just before the packages are installed, and record what was
applied. Nothing here imports dnf.
"""

from __future__ import annotations

from collections import namedtuple

from . import CLIENT_ID, KEYS, SECRET, operations, state, validation
from .settings import Paths
from .validation import Finding

PLUGIN_CONF = "onedesk_azuread.conf"


class Preflight(namedtuple("Preflight", "present blocking notes")):
    """The entries' check before a OneDesk transaction downloads anything."""

    __slots__ = ()
    # present: bool; any Azure AD entry at all
    # blocking: list[Finding]; errors the canonical rewrite cannot repair
    # notes: list[Finding]; repairable errors and warnings: logged, not blocking


def preflight(paths: Paths, require: bool) -> Preflight:
    """Check the entries before anything is downloaded or installed."""
    info = operations.inspect(paths)
    present = any(info.snapshot.doc.entries_for(key) for key in KEYS)
    if not present:
        return Preflight(False, info.findings if require else [], [])
    blocking = validation.unrepairable_errors(info.findings)
    notes = [f for f in info.findings if f not in blocking]
    return Preflight(True, blocking, notes)


def blocking_message(paths: Paths, blocking: list[Finding], root: str) -> str:
    lines = [f"onedesk-azuread: {paths.settings} would give OneDesk wrong Azure AD settings; "
             f"nothing was installed:"]
    lines += [f"  {finding.describe(paths.settings)}" for finding in blocking]
    if root not in ("", "/"):
        lines.append(f"  (run the onedesk-azuread commands above with --root {root})")
    return "\n".join(lines)


def inject(paths: Paths) -> tuple[list[Finding], dict[str, str]]:
    """Repair what `check --fix` repairs; return the repairs and the variables to export."""
    result = operations.check(paths, fix=True)
    values = result.after.values
    env = {key: values[key] for key in KEYS if values[key] is not None}
    return result.repaired, env


def record(paths: Paths, env: dict[str, str], packages: list[str]) -> None:
    if CLIENT_ID in env and SECRET in env:
        state.record_applied(paths.state_dir, env[CLIENT_ID], env[SECRET], packages)
