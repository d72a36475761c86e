# onedesk_azuread.py
# dnf plugin: guard OneDesk's Azure AD sign-in settings when onedesk-db-utils
# is installed, reinstalled, upgraded or downgraded.
#
# A thin adapter over the onedesk_azuread library: every decision is
# onedesk_azuread.hook's, as for the dnf 5 hook; this module reads its
# configuration and translates hook's results into dnf's logger and
# dnf.exceptions.Error. Until a transaction installs a trigger package it
# imports nothing but the standard library and dnf, and reads nothing but its
# own configuration (a `file =` other than the default is judged by hook's rule
# in the first transaction, see _settings_file_problem).
#
# The values are never exported into the environment. OneDesk's install
# scripts read /root/.OneDesk (the vendor's own procedure is "edit the file,
# reinstall"), so an export would add nothing but a leak: every scriptlet of
# the transaction, and every process those leave running, would inherit the
# secret (readable in /proc/PID/environ). Instead the plugin guarantees that
# the file the scripts source is valid and canonical: checked again and
# repaired under the write lock just before the packages are installed. dnf 5
# cannot pass variables to scriptlets anyway, so both use the same mechanism.

import logging
import os
import re

import dnf
import dnf.exceptions
import dnf.transaction

logger = logging.getLogger('dnf.plugin')

DEFAULT_TRIGGERS = ('onedesk-db-utils',)
DEFAULT_FILE = '/root/.OneDesk'
# `enabled` is dnf's own: it honours it before loading the plugin, and
# `dnf --enableplugin` overrides it, so the plugin never reads it.
CONF_KEYS = ('enabled', 'packages', 'require', 'file')
_PACKAGE_NAME = re.compile(r'[A-Za-z0-9_.+-]+\Z')
_BOOLEANS = {'1': True, 'yes': True, 'true': True, 'on': True,
             '0': False, 'no': False, 'false': False, 'off': False}
_INLINE_COMMENT = ' (dnf does not allow comments after a value)'

# The messages both package managers' adapters share are onedesk_azuread.hook's MSG_*.
LEVELS = {'info': logger.info, 'warning': logger.warning}  # hook.INFO, hook.WARNING
MSG_RPM_DEBUG = ('onedesk-azuread: rpm debug verbosity traces install scripts with sh -x, which '
                 'would write the Azure AD secret into dnf\'s output, logs and history; '
                 'using rpmverbosity=info for this transaction')
MSG_LIBRARY = ('onedesk-azuread: the onedesk_azuread library cannot be imported (%s); '
               'reinstall the onedesk-azuread package')
# A bad configuration: one line, naming the file, the key and the fix.
MSG_CONF_STOP = 'onedesk-azuread: %s: %s; nothing was installed'
MSG_CONF_WARNING = ('onedesk-azuread: %s: %s; until then dnf stops every transaction that '
                    'installs %s')
# The configuration decides which file is checked and whether a missing entry stops dnf:
# it counts only when root alone can change it (onedesk_azuread.trust.root_only), which a
# transaction installing a trigger (the configured ones or the default) checks first.
MSG_CONF_NOT_ROOT_ONLY = 'onedesk-azuread: %s; nothing was installed'
MSG_CONF_GONE = 'onedesk-azuread: %s: cannot be read (%s); nothing was installed'
CONF_UNREADABLE = 'cannot be read (%s); correct its [main] section'
CONF_REQUIRE = 'require = %r is not a boolean; set require = 0 or require = 1%s'
CONF_PACKAGES_EMPTY = 'packages is empty; name the trigger packages: packages = onedesk-db-utils'
CONF_PACKAGES_NAME = ('packages: %r is not a package name; separate the names with spaces or '
                      'commas%s')
CONF_UNKNOWN = ('%r is not a setting of this plugin (packages, require, file); correct its '
                'name or remove it')

_INSTALLING = {
    dnf.transaction.PKG_INSTALL: 'install',
    dnf.transaction.PKG_REINSTALL: 'reinstall',
    dnf.transaction.PKG_UPGRADE: 'upgrade',
    dnf.transaction.PKG_DOWNGRADE: 'downgrade',
}


class OnedeskAzureAD(dnf.Plugin):
    """Validate, repair and record the Azure AD entries of /root/.OneDesk."""

    name = 'onedesk_azuread'

    def __init__(self, base, cli):
        super().__init__(base, cli)
        self.triggers = DEFAULT_TRIGGERS
        self.require = False
        self.settings_file = DEFAULT_FILE
        self._conf_problem = None  # (file, problem) of a bad configuration: fail closed
        self._conf_path = None  # the configuration file named in its problems
        self._conf_files = []  # the configuration files dnf read
        self._packages = []  # NEVRAs of the trigger packages this transaction installs
        self._applied = {}  # the pair checked and written under the lock

    def config(self):
        files = [os.path.join(p, self.name + '.conf') for p in self.base.conf.pluginconfpath]
        self._conf_files = [f for f in files if os.path.isfile(f)]  # as read_config reads
        self._conf_path = (self._conf_files or files or [self.name + '.conf'])[-1]
        try:
            problem = self._read_config()
        except Exception as exc:  # a parse error: dnf would stop every command on it
            problem = CONF_UNREADABLE % exc
        self._fail_closed(problem)

    def _fail_closed(self, problem):
        """Note the configuration's first problem: it stops every guarded transaction."""
        if problem and not self._conf_problem:
            # Guarded transactions are stopped with the defaults' triggers.
            self.triggers = DEFAULT_TRIGGERS
            self._conf_problem = (self._conf_path, problem)

    def _read_config(self):
        """Read the configuration once; return the first problem in it, or None."""
        conf = self.read_config(self.base.conf)
        if not conf.has_section('main'):
            return None
        unknown = [key for key in conf.options('main') if key not in CONF_KEYS]
        if unknown:
            return CONF_UNKNOWN % unknown[0]
        for key, take in (('packages', self._take_packages), ('require', self._take_require),
                          ('file', self._take_file)):
            if conf.has_option('main', key):
                problem = take(conf.get('main', key))
                if problem:
                    return problem
        return None

    def _take_packages(self, value):
        names = tuple(value.replace(',', ' ').split())
        if not names:
            return CONF_PACKAGES_EMPTY
        for name in names:
            if not _PACKAGE_NAME.match(name):
                return CONF_PACKAGES_NAME % (name, _INLINE_COMMENT if '#' in value else '')
        self.triggers = names
        return None

    def _take_require(self, value):
        # dnf's own spelling of booleans, as in dnf.conf.
        word = value.strip().lower()
        if word not in _BOOLEANS:
            return CONF_REQUIRE % (value, _INLINE_COMMENT if '#' in value else '')
        self.require = _BOOLEANS[word]
        return None

    def _take_file(self, value):
        # Judged by hook.settings_path_problem in the first transaction (the last key
        # read, so still the first problem): the library is not imported here.
        self.settings_file = value.strip()

    def _settings_file_problem(self):
        """hook's settings path rule on `file =`; the default needs no library to pass."""
        if self._conf_problem or self.settings_file == DEFAULT_FILE:
            return None
        try:
            from onedesk_azuread import hook
        except ImportError:
            return None  # a guarded transaction stops on it in _guarded; others carry on
        return hook.settings_path_problem(self.settings_file, 'file = ',
                                          repr(self.settings_file))

    def _refuse_conf_not_root_only(self):
        try:
            from onedesk_azuread import trust
        except ImportError as exc:
            raise dnf.exceptions.Error(MSG_LIBRARY % exc) from None
        for path in self._conf_files:
            try:
                _, _, problem = trust.root_only(path)
            except OSError as exc:  # changed since dnf read it
                raise dnf.exceptions.Error(MSG_CONF_GONE % (path, exc.strerror)) from None
            if problem:
                raise dnf.exceptions.Error(MSG_CONF_NOT_ROOT_ONLY % problem.message(path))

    def _paths(self):
        from onedesk_azuread.paths import Paths

        return Paths.inside(self.base.conf.installroot, self.settings_file)

    def _guarded(self, step, recording=False):
        """Run ``step``; any failure stops dnf with hook's one line, never a traceback."""
        try:
            from onedesk_azuread import hook
        except ImportError as exc:
            raise dnf.exceptions.Error(MSG_LIBRARY % exc) from None
        try:
            return step()
        except dnf.exceptions.Error:
            raise
        except Exception as exc:  # dnf would print a traceback and carry on
            logger.debug('onedesk-azuread: %r', type(exc))
            raise dnf.exceptions.Error(hook.failure_line(exc, recording)) from None

    def resolved(self):
        installing = [item.pkg for item in self.base.transaction if item.action in _INSTALLING]
        # The default triggers too: a configuration someone else wrote could name others.
        if self._conf_files and any(pkg.name in self.triggers or pkg.name in DEFAULT_TRIGGERS
                                    for pkg in installing):
            self._refuse_conf_not_root_only()
        self._fail_closed(self._settings_file_problem())
        self._packages = sorted(f'{pkg.name}-{pkg.evr}.{pkg.arch}' for pkg in installing
                                if pkg.name in self.triggers)
        if self._conf_problem:
            path, problem = self._conf_problem
            if self._packages:
                raise dnf.exceptions.Error(MSG_CONF_STOP % (path, problem))
            logger.warning(MSG_CONF_WARNING, path, problem, ', '.join(self.triggers))
            return
        if not self._packages:
            return
        self._guarded(self._preflight)
        if self._packages and self.base.conf.rpmverbosity == 'debug':
            # rpm runs shell scriptlets with `sh -x` at debug level (rpmscript.c); the
            # install scripts source the settings file, so the trace would print the secret.
            logger.warning(MSG_RPM_DEBUG)
            self.base.conf.rpmverbosity = 'info'

    def _preflight(self):
        from onedesk_azuread import hook

        logger.info(hook.MSG_TRIGGERED, ', '.join(self._packages))
        verdict = hook.verdict(self._paths(), self.require)
        for level, message in verdict.said:
            LEVELS[level]('%s', message)
        if verdict.stop:
            raise dnf.exceptions.Error(verdict.stop)
        if not verdict.present:
            self._packages = []  # nothing to check again or record

    def pre_transaction(self):
        if self._packages:
            self._guarded(self._inject)

    def _inject(self):
        from onedesk_azuread import KEYS, hook

        paths = self._paths()
        repaired, self._applied = hook.inject(paths)  # Blocked: _guarded's one line
        for finding in repaired:
            logger.info(hook.MSG_REPAIRED, finding.code, paths.settings)
        # Scriptlets inherit dnf's environment: a stale export from the shell
        # that started dnf must not stand in for the file just checked.
        for key in KEYS:
            os.environ.pop(key, None)
        logger.info(hook.MSG_VALIDATED, paths.settings, ', '.join(self._packages))

    def transaction(self):
        if self._packages:
            self._guarded(self._record, recording=True)

    def _record(self):
        from onedesk_azuread import hook

        hook.record(self._paths(), self._applied, self._packages)
