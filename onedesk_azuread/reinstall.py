"""`apply`: the vendor's reinstall (remove onedesk-db-utils, install the four packages), safely.

Before anything is removed: the entries are valid, every package the removal
takes away can be installed again from the enabled repositories, and remote
packages are already in dnf's cache. After: the plugin's record says the
installed packages carry the current entries. Any failure says what state the
system is in and the one command that completes the job.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

from . import operations, packages, state, transaction
from .errors import OnedeskError
from .packages import DB_UTILS, ONEDESK_PACKAGES
from .settings import Paths
from .status import status


class Step(namedtuple("Step", "title args")):
    """One dnf command of the reinstall."""

    __slots__ = ()
    # title: str
    # args: list[str]; dnf arguments (the dnf command and --installroot come first)


class Plan(namedtuple("Plan", "removed reinstalled steps")):
    """The reinstall, worked out before anything changes."""

    __slots__ = ()
    # removed: list[str]; what `dnf remove onedesk-db-utils` takes away
    # reinstalled: list[str]; what is installed again (the four, and anything else removed)
    # steps: list[Step]


def _check_entries(paths: Paths) -> None:
    """The plugin's own check, so that apply refuses exactly what dnf would stop."""
    checked = transaction.preflight(paths, require=True)
    if not checked.present:
        raise OnedeskError(f"{paths.settings}: has no Azure AD entries to apply; "
                           f"set them first: onedesk-azuread set")
    if checked.blocking:
        raise operations.Refused(paths.settings, checked.blocking)


def plan(paths: Paths) -> Plan:
    """Work out the reinstall; raise (changing nothing) when it cannot be done safely."""
    _check_entries(paths)
    root = paths.root
    have = packages.installed(root, ONEDESK_PACKAGES)
    removed: list[str] = []
    if have[DB_UTILS] is not None:
        dependents = packages.query(root, "--installed", "--whatrequires", DB_UTILS,
                                    "--recursive", "--qf", "%{name}")
        removed = sorted({DB_UTILS, *dependents})
    reinstalled = list(ONEDESK_PACKAGES) + [name for name in removed
                                            if name not in ONEDESK_PACKAGES]
    offered = set(packages.query(root, "--available", "--qf", "%{name}", *reinstalled))
    missing = [name for name in reinstalled if name not in offered]
    if missing:
        raise OnedeskError(
            f"nothing was removed: no enabled repository offers {', '.join(missing)}, so "
            f"{'it' if len(missing) == 1 else 'they'} could not be installed again; enable the "
            f"OneDesk repository (dnf repolist) and run onedesk-azuread apply again")
    extra = [name for name in reinstalled if name not in have]
    if extra:  # dependents beyond the four: ask rpm about them too
        have = {**have, **packages.installed(root, extra)}
    steps = _prefetch_steps(root, reinstalled, have)
    if removed:
        others = [name for name in removed if name != DB_UTILS]
        title = f"remove {DB_UTILS}" + (f" and what requires it ({', '.join(others)})"
                                        if others else "")
        steps.append(Step(title, ["remove", "-y", "--noautoremove", DB_UTILS]))
    steps.append(Step(f"install {', '.join(reinstalled)}", ["install", "-y", *reinstalled]))
    return Plan(removed, reinstalled, steps)


def _prefetch_steps(root: str, names: list[str], have: dict[str, str | None]) -> list[Step]:
    """Download now what the install will need, so a lost network cannot strand the removal.

    `dnf install --downloadonly` skips installed packages, so each installed one is
    fetched by the command that names the version `dnf install` will pick:
    reinstall (same version), upgrade (newer) or downgrade (older).
    """
    available = {}
    for line in packages.query(root, "--available", "--latest-limit", "1",
                               "--qf", "%{name} %{name}-%{evr}.%{arch}", *names):
        name, nevra = line.split()
        available[name] = nevra
    upgrades = set(packages.query(root, "--upgrades", "--qf", "%{name}", *names))
    groups: dict[str, list[str]] = {"install": [], "reinstall": [], "upgrade": [], "downgrade": []}
    for name in names:
        current = have.get(name)
        if current is None:
            groups["install"].append(name)
        elif current == available.get(name):
            groups["reinstall"].append(name)
        elif name in upgrades:
            groups["upgrade"].append(name)
        else:
            groups["downgrade"].append(name)
    return [Step(f"download ({command}) {', '.join(group)}",
                 [command, "-y", "--downloadonly", *group])
            for command, group in groups.items() if group]


def run(paths: Paths, the_plan: Plan, say: Callable[[str], None]) -> None:
    """Carry out the plan; raise with the system's state and the completing command on failure."""
    root = paths.root
    removed = False
    for step in the_plan.steps:
        say(f"==> {step.title}")
        result = packages.dnf(root, *step.args)
        # dnf's tables are long: show the plugin's lines and problems, and all on failure.
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip() and (result.returncode or _worth_showing(line)):
                say(f"    {line}")
        if result.returncode == 0:
            removed = removed or step.args[0] == "remove"
            continue
        command = " ".join(packages.dnf_command(root) + ["install", *the_plan.reinstalled])
        if removed:
            raise OnedeskError(
                f"{', '.join(the_plan.removed)} were removed and are NOT installed again "
                f"(dnf install failed: {result.last_error()}). Complete the job with: {command}")
        raise OnedeskError(f"nothing was removed: dnf {step.args[0]} failed: "
                           f"{result.last_error()}. Fix that and run onedesk-azuread apply again")


def _worth_showing(line: str) -> bool:
    return "onedesk-azuread" in line or line.lstrip().lower().startswith(("error", "warning"))


def confirm(paths: Paths):
    """The status after the reinstall; an error if the plugin did not record the entries."""
    after = status(paths)
    if after.sync != state.IN_SYNC:
        raise OnedeskError(
            f"the packages were installed again, but the plugin did not record the settings as "
            f"applied ({after.sync}): is python3-dnf-plugin-onedesk-azuread installed and enabled "
            f"in /etc/dnf/plugins/{transaction.PLUGIN_CONF}?")
    return after
