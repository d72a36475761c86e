"""node_exporter's textfile-collector file: the facts of one check, their exposition text,
and the atomic writer (`check --metrics`, and check.conf's ``metrics`` for the daily check).

The file is written atomically and readable by everyone (node_exporter does not run as
root): it holds facts about the entries, never the secret or its hint.
"""

from __future__ import annotations

import os
from collections import namedtuple
from datetime import date, datetime, timedelta, timezone

from . import state, validation, verify
from .errors import OnedeskError
from .fsutil import replace_file

METRICS_SUFFIX = ".prom"


def metrics_path_problem(value: str) -> bool:
    """Whether ``value`` cannot be a textfile-collector file: not absolute, not *.prom, or '..'."""
    return (not value.startswith("/") or not value.endswith(METRICS_SUFFIX)
            or ".." in value.split("/") or os.path.basename(value) == METRICS_SUFFIX)


class Outcome(namedtuple("Outcome", "findings expires online sync checked")):
    """What a check found: the facts the metrics (and the daily check's exit code) are made
    of, no secret."""

    __slots__ = ()
    # findings: list[Finding]
    # expires: date | None; the recorded expiry of the current secret
    # online: verify.Result | None; None when not asked (no tenant)
    # sync: str | None; status' state (state.IN_SYNC, ...); None when it could not be told
    # checked: datetime; when (UTC)

    @property
    def errors(self) -> list:
        return validation.errors(self.findings)


ONLINE_STATES = (verify.VALID, verify.INVALID, verify.UNVERIFIED, verify.SKIPPED)
PREFIX = "onedesk_azuread_"
# name -> (TYPE, HELP): written once, for every state.
METRICS = {
    "secret_expiry_recorded": ("gauge", "1 when an expiry date is recorded for the current "
                                        "client secret (onedesk-azuread set --expires), else 0."),
    "secret_expiry_timestamp_seconds": ("gauge", "When the client secret expires: the end of "
                                                 "the recorded day, 00:00 UTC of the next day "
                                                 "(Unix time). Absent when none is recorded."),
    "entries_valid": ("gauge", "1 when AZUREAD_CID and AZUREAD_CIS have no error (an expired "
                               "secret is an error), else 0."),
    "entries_applied": ("gauge", "1 when the installed OneDesk packages were set up with the "
                                 "current entries (onedesk-azuread status: in sync), else 0."),
    "online_result": ("gauge", "1 for the online check's result (valid, invalid, unverified: "
                               "could not ask, skipped: offline errors), 0 for the others. "
                               "Absent when no tenant is configured."),
    "check_timestamp_seconds": ("gauge", "When this check ran (Unix time)."),
}


def _expiry_timestamp(expires: date) -> int:
    end = datetime.combine(expires + timedelta(days=1), datetime.min.time(), timezone.utc)
    return int(end.timestamp())


def metrics_text(outcome: Outcome) -> str:
    """The textfile-collector file for one outcome (pure): HELP and TYPE for each metric."""
    samples: dict[str, list[str]] = {name: [] for name in METRICS}
    samples["secret_expiry_recorded"].append(f" {int(outcome.expires is not None)}")
    if outcome.expires is not None:
        samples["secret_expiry_timestamp_seconds"].append(
            f" {_expiry_timestamp(outcome.expires)}")
    samples["entries_valid"].append(f" {int(not outcome.errors)}")
    samples["entries_applied"].append(f" {int(outcome.sync == state.IN_SYNC)}")
    if outcome.online is not None:
        for name in ONLINE_STATES:
            samples["online_result"].append(
                f'{{result="{name}"}} {int(outcome.online.status == name)}')
    samples["check_timestamp_seconds"].append(f" {int(outcome.checked.timestamp())}")
    lines = []
    for name, (kind, text) in METRICS.items():
        if not samples[name]:
            continue
        lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}"]
        lines += [f"{PREFIX}{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n"


METRICS_NO_DIRECTORY = ("{path}: cannot write the metrics: the directory {directory} does not "
                        "exist; create it (node_exporter's --collector.textfile.directory) or "
                        "give another path")
METRICS_READ_ONLY = ("{path}: cannot write the metrics: {directory} is read-only here; under "
                     "systemd add it with `systemctl edit onedesk-azuread-check.service`: "
                     "[Service] ReadWritePaths={directory}")
METRICS_NOT_PROM = ("{path}: is not a *.prom file (node_exporter's textfile collector reads "
                    "only those); name it for example onedesk_azuread.prom")
METRICS_MODE = 0o644  # node_exporter runs as its own user: it must read the file


def write_metrics(path: str, text: str) -> None:
    """Write the metrics atomically: a temp file in the same directory (so node_exporter
    never reads half a file, and never a *.prom of ours that is incomplete), then rename."""
    if not path.endswith(METRICS_SUFFIX) or os.path.basename(path) == METRICS_SUFFIX:
        raise OnedeskError(METRICS_NOT_PROM.format(path=path))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OnedeskError(METRICS_NO_DIRECTORY.format(path=path, directory=directory))
    try:
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY  # systemd's ProtectSystem
    except OSError:
        read_only = False
    if read_only:
        raise OnedeskError(METRICS_READ_ONLY.format(path=path, directory=directory))
    # fsutil's atomic replace: its temp name (.NAME.*.tmp) does not end in .prom, so the
    # collector ignores it until the rename.
    replace_file(path, text.encode("utf-8"), mode=METRICS_MODE, error=OnedeskError,
                 action="write the metrics")
