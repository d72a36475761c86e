"""check.conf: the daily check's settings, read strictly and only when root alone can change it.

`key = value` lines and # comments, nothing else; each value checked by configobj's
Validator (validation.configspec) with the checks below. It decides where the client
secret is sent, so a file, directory or symlink on its way that anyone but root could
change makes it refused (trust.root_only), and nothing is read.
"""

from __future__ import annotations

import math
import os
import stat
from collections import namedtuple

from . import metrics, trust, validation, verify
from .errors import OnedeskError

CONF_KEYS = ("tenant", "cloud", "authority_host", "timeout", "metrics")
CONF_LIMIT = 64 * 1024
CONF_FIX_SYNTAX = ("write one `key = value` a line (comments on lines of their own, "
                   "starting with #)")
CONF_UNKNOWN = ("{where}: {key!r} is not a setting of the scheduled check ({keys}); correct "
                "its name or remove the line")
CONF_DUPLICATE = "{where}: {key} is set twice (first on line {first}); keep one"
CONF_SECTION = "{where}: sections are not used here; remove the line {text!r}"
CONF_NOT_KEY_VALUE = "{where}: {text!r} is not `key = value`; " + CONF_FIX_SYNTAX
CONF_QUOTED = "{where}: {key} = {value}: write the value without quotes"
CONF_COMMENT = ("{where}: {key} = {value!r} has a comment after the value; put it on a line "
                "of its own")
CONF_EMPTY = "{where}: {key} is empty; give a value or comment the line out"
CONF_TENANT = "tenant = {value}: {reason}"
CONF_CLOUD = "cloud = {value!r} is not one of {clouds}"
CONF_HOST = "authority_host = {value!r} {reason}"
CONF_TIMEOUT = ("timeout = {value!r} is not a number of seconds from 0.1 to 300; "
                "set for example timeout = 10")
CONF_NEEDS_TENANT = ("{path}: {key} is set but tenant is not, so there is no online check for "
                     "it to change; set tenant = TENANT or comment {key} out")
CONF_UNREADABLE = ("{path}: cannot be read: {reason}; fix its permissions or restore it from "
                   "the package")
CONF_NOT_REGULAR = ("{path}: is not a regular file; restore it from the package "
                    "(rpm -V onedesk-azuread)")
CONF_NOT_UTF8 = "{path}: is not UTF-8 text; restore it from the package"
CONF_TOO_BIG = "{path}: is more than {limit} bytes, which no check.conf is; restore it"
CONF_REPLACED = "it was replaced while being read; run the check again"
CONF_METRICS = ("{value!r} is not an absolute path of a *.prom file (node_exporter's "
                "textfile collector reads only those), without ..; for example: "
                "/var/lib/node_exporter/textfile_collector/onedesk_azuread.prom")


class ConfError(OnedeskError):
    """check.conf cannot be used: one line naming the file, the line or key, and the fix."""


class CheckConf(namedtuple("CheckConf", "path exists tenant cloud authority_host timeout metrics",
                           defaults=(None, "public", None, verify.DEFAULT_TIMEOUT, None))):
    """The scheduled check's settings, validated."""

    __slots__ = ()
    # path: str; the file as read
    # exists: bool
    # tenant: str | None; None: no online check
    # cloud: str; a key of verify.CLOUDS
    # authority_host: str | None
    # timeout: float
    # metrics: str | None; as written in the file (a path inside the root)


def parse_conf(text: str, path: str) -> CheckConf:
    """check.conf's text, strictly: `key = value` lines, # comments, nothing else (pure)."""
    seen: dict[str, int] = {}
    values: dict[str, object] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            raise ConfError(CONF_SECTION.format(where=where, text=line))
        key, equals, value = (part.strip() for part in line.partition("="))
        if not equals or not key:
            raise ConfError(CONF_NOT_KEY_VALUE.format(where=where, text=line))
        if key not in CONF_KEYS:
            raise ConfError(CONF_UNKNOWN.format(where=where, key=key, keys=", ".join(CONF_KEYS)))
        if key in seen:
            raise ConfError(CONF_DUPLICATE.format(where=where, key=key, first=seen[key]))
        seen[key] = number
        if not value:
            raise ConfError(CONF_EMPTY.format(where=where, key=key))
        if value[0] in "'\"":
            raise ConfError(CONF_QUOTED.format(where=where, key=key, value=value))
        if " #" in value or "\t#" in value:
            raise ConfError(CONF_COMMENT.format(where=where, key=key, value=value))
        values[key] = value
    for key, checked in validation.configspec(values, CONF_SPEC, CONF_CHECKS).items():
        if isinstance(checked, ValueError):
            raise ConfError(f"{path}:{seen[key]}: {checked}")
        values[key] = checked
    if "tenant" not in values:
        for key in ("cloud", "authority_host", "timeout"):
            if key in values:
                raise ConfError(CONF_NEEDS_TENANT.format(path=path, key=key))
    return CheckConf(path, True, **values)


# check.conf's values: configobj's Validator with this configspec and these checks. Each
# check returns the value to use or raises ValueError with the reason (the caller adds the
# file and line).
CONF_SPEC = ["tenant = tenant()", "cloud = cloud()", "authority_host = https_url()",
             "timeout = seconds()", "metrics = prom_file()"]


def _tenant(value: str) -> str:
    try:
        return verify.check_tenant(value)
    except ValueError as exc:
        raise ValueError(CONF_TENANT.format(value=value, reason=exc)) from None


def _cloud(value: str) -> str:
    if value not in verify.CLOUDS:
        raise ValueError(CONF_CLOUD.format(value=value, clouds=", ".join(verify.CLOUDS)))
    return value


def _https_url(value: str) -> str:
    try:
        return verify.check_authority_host(value)
    except ValueError as exc:
        raise ValueError(CONF_HOST.format(value=value, reason=exc)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 300:  # also refuses nan and inf
        raise ValueError(CONF_TIMEOUT.format(value=value))
    return seconds


def _prom_file(value: str) -> str:
    if metrics.metrics_path_problem(value):
        raise ValueError(CONF_METRICS.format(value=value))
    return value


CONF_CHECKS = {"tenant": _tenant, "cloud": _cloud, "https_url": _https_url,
               "seconds": _seconds, "prom_file": _prom_file}


def load_conf(path: str, top: str = "/") -> CheckConf:
    """check.conf from disk; absent means every default (offline check only).

    It decides where the client secret is sent, so it counts only when root alone can
    change it (trust.root_only): the file, every directory on the way and every symlink
    (configuration management links files into /etc) are root's and not writable by group
    or others; otherwise ConfError and nothing is read. ``top``: the --root, whose parents
    are not judged.
    """
    try:
        real, st, problem = trust.root_only(path, top)
    except FileNotFoundError:
        return CheckConf(path, False)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    if problem is not None:
        raise ConfError(problem.message(path))
    if not stat.S_ISREG(st.st_mode):
        raise ConfError(CONF_NOT_REGULAR.format(path=path))
    try:
        # The walk's last component, not the name: no symlink is followed here.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise ConfError(CONF_UNREADABLE.format(path=path, reason=CONF_REPLACED))
        data = os.read(fd, CONF_LIMIT + 1)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    finally:
        os.close(fd)
    if len(data) > CONF_LIMIT:
        raise ConfError(CONF_TOO_BIG.format(path=path, limit=CONF_LIMIT))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfError(CONF_NOT_UTF8.format(path=path)) from None
    return parse_conf(text, path)
