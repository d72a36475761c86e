"""What a package transaction that installs OneDesk does with the Azure AD entries.

Shared by the dnf 4 plugin (and any dnf 5 hook), which decide themselves, with
nothing but dnf, whether a transaction installs a trigger package. Here: check
the entries before anything is downloaded; just before the packages are
installed, check them again under the write lock and leave the file the
install scripts source valid and canonical; record what was applied. The
values are never exported: the scripts read the file. Nothing here imports dnf.
"""

from __future__ import annotations

from collections import namedtuple

from . import CLIENT_ID, KEYS, SECRET, operations, state, validation
from .errors import Blocked
from .paths import Paths
from .validation import Finding

PLUGIN_CONF = "onedesk_azuread.conf"


# A passed expiry date is an error for `check` and `status`, but never stops the
# package manager: the file did not change, and holding back every upgrade that
# includes onedesk-db-utils (security updates too) would not make the secret valid.
EXPIRED = "secret-expired"


class Preflight(namedtuple("Preflight", "present blocking notes alerts")):
    """The entries' check before a OneDesk transaction downloads anything."""

    __slots__ = ()
    # present: bool; any Azure AD entry at all
    # blocking: list[Finding]; errors the canonical rewrite cannot repair
    # notes: list[Finding]; repairable errors and warnings: logged, not blocking
    # alerts: list[Finding]; errors that do not stop a transaction (a passed expiry):
    #   logged as warnings


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings that stop a OneDesk transaction."""
    return [f for f in validation.unrepairable_errors(findings) if f.code != EXPIRED]


def preflight(paths: Paths, require: bool) -> Preflight:
    """Check the entries before anything is downloaded or installed."""
    info = operations.inspect(paths)
    doc = info.snapshot.doc
    # An entry the tool cannot read (unsupported-construct) is still an entry: it blocks.
    present = any(doc.entries_for(key) or doc.unsupported_for(key) for key in KEYS)
    if not present:
        return Preflight(False, info.findings if require else [], [], [])
    stops = blocking(info.findings)
    alerts = [f for f in info.findings if f.code == EXPIRED]
    notes = [f for f in info.findings if f not in stops and f not in alerts]
    return Preflight(True, stops, notes, alerts)


def blocking_message(paths: Paths, stops: list[Finding], root: str,
                     changed: bool = False) -> str:
    what = "changed after dnf checked it and now would give" if changed else "would give"
    lines = [f"onedesk-azuread: {paths.settings} {what} OneDesk wrong Azure AD settings; "
             f"nothing was installed:"]
    lines += [f"  {finding.describe(paths.settings)}" for finding in stops]
    if root not in ("", "/"):
        lines.append(f"  (run the onedesk-azuread commands above with --root {root})")
    return "\n".join(lines)


def inject(paths: Paths) -> tuple[list[Finding], dict[str, str]]:
    """Make the file the install scripts source valid and canonical, just before they run.

    Under the write lock: read the file again, validate it, raise Blocked on an
    error the rewrite cannot repair (nothing written), otherwise apply `check
    --fix`'s repairs. Returns the repairs and the pair exactly as validated and
    written there: what `record` may call applied.
    """
    def refuse(current: operations.Inspection) -> None:
        stops = blocking(current.findings)
        if stops:
            raise Blocked(blocking_message(paths, stops, paths.root, changed=True))

    result = operations.check(paths, fix=True, refuse=refuse)
    values = {key: result.values[key] for key in KEYS if result.values[key] is not None}
    return result.repaired, values


def record(paths: Paths, values: dict[str, str], packages: list[str]) -> None:
    """Record that ``packages`` were installed with the pair ``inject`` checked."""
    if CLIENT_ID in values and SECRET in values:
        state.record_applied(paths.state_dir, values[CLIENT_ID], values[SECRET], packages)
