"""Where the settings file and the tool's state live, under a root like `rpm --root`."""

from __future__ import annotations

import os
from collections import namedtuple  # not typing.NamedTuple: 4-20 ms more for the dnf hooks

DEFAULT_FILE = "/root/.OneDesk"
STATE_DIR = "/var/lib/onedesk-azuread"
CHECK_CONF = "/etc/onedesk-azuread/check.conf"


class Paths(namedtuple("Paths", "root settings state_dir")):
    """The settings file and the state directory of one system (``root``)."""

    __slots__ = ()
    # root: str
    # settings: str
    # state_dir: str

    @property
    def check_conf(self) -> str:
        """The scheduled check's configuration (`check --scheduled`), inside the root."""
        return _join(self.root, CHECK_CONF)

    def inside_root(self, absolute: str) -> str:
        """A path named by the system's own configuration (check.conf), under the root."""
        return _join(self.root, absolute)

    @classmethod
    def under(cls, root: str | None = None, settings: str | None = None) -> Paths:
        """The CLI's view: ``settings`` (--file) is a path on this machine, as given."""
        root = os.path.abspath(root or "/")
        return cls(
            root=root,
            settings=os.path.abspath(settings) if settings else _join(root, DEFAULT_FILE),
            state_dir=_join(root, STATE_DIR),
        )

    @classmethod
    def inside(cls, root: str | None, settings_file: str = DEFAULT_FILE) -> Paths:
        """The package managers' view: ``settings_file`` is a path inside the installroot."""
        root = os.path.abspath(root or "/")
        return cls(root, _join(root, settings_file), _join(root, STATE_DIR))


def _join(root: str, absolute: str) -> str:
    return os.path.join(root, absolute.lstrip("/"))
