# onedesk_azuread.py
# dnf plugin: guard and carry OneDesk's Azure AD sign-in settings when
# onedesk-db-utils is installed, reinstalled, upgraded or downgraded.
#
# A thin adapter over the onedesk_azuread library. Until a transaction
# installs a trigger package it imports nothing but the standard library and
# dnf, and reads nothing but its own configuration.

import logging
import os

import dnf
import dnf.exceptions
import dnf.transaction

logger = logging.getLogger('dnf.plugin')

MSG_TRIGGERED = 'onedesk-azuread: checking the Azure AD settings for %s'
MSG_NO_ENTRIES = ('onedesk-azuread: %s has no Azure AD entries; OneDesk is installed without '
                  'Azure AD sign-in')
MSG_NO_ENTRIES_REQUIRED = ('onedesk-azuread: %s has no Azure AD entries and require = 1; '
                           'set them first with: onedesk-azuread set')
MSG_NOTE = 'onedesk-azuread: %s'
MSG_REPAIRED = 'onedesk-azuread: repaired %s in %s'
MSG_APPLIED = 'onedesk-azuread: Azure AD settings passed to the install scripts of %s'
MSG_FAILED = 'onedesk-azuread: %s'
MSG_UNEXPECTED = ('onedesk-azuread: unexpected %s while handling the Azure AD settings; '
                  'nothing was installed. Run: onedesk-azuread check')
MSG_NOT_RECORDED = ('onedesk-azuread: the packages were installed, but what was applied could '
                    'not be recorded (%s); `onedesk-azuread status` will not say "in sync"')
MSG_RPM_DEBUG = ('onedesk-azuread: rpm debug verbosity traces install scripts with sh -x, which '
                 'would write the Azure AD secret into dnf\'s output, logs and history; '
                 'using rpmverbosity=info for this transaction')
MSG_LIBRARY = ('onedesk-azuread: the onedesk_azuread library cannot be imported (%s); '
               'reinstall the onedesk-azuread package')

_INSTALLING = {
    dnf.transaction.PKG_INSTALL: 'install',
    dnf.transaction.PKG_REINSTALL: 'reinstall',
    dnf.transaction.PKG_UPGRADE: 'upgrade',
    dnf.transaction.PKG_DOWNGRADE: 'downgrade',
}


class OnedeskAzureAD(dnf.Plugin):
    """Validate, inject and record the Azure AD entries of /root/.OneDesk."""

    name = 'onedesk_azuread'

    def __init__(self, base, cli):
        super().__init__(base, cli)
        self.enabled = True
        self.triggers = ('onedesk-db-utils',)
        self.require = False
        self.settings_file = '/root/.OneDesk'
        self._packages = []  # NEVRAs of the trigger packages this transaction installs
        self._env = {}

    def config(self):
        conf = self.read_config(self.base.conf)
        if conf.has_option('main', 'enabled'):
            self.enabled = conf.getboolean('main', 'enabled')
        if conf.has_option('main', 'packages'):
            names = conf.get('main', 'packages').replace(',', ' ').split()
            self.triggers = tuple(names) or self.triggers
        if conf.has_option('main', 'require'):
            self.require = conf.getboolean('main', 'require')
        if conf.has_option('main', 'file'):
            self.settings_file = conf.get('main', 'file').strip() or self.settings_file

    def _paths(self):
        from onedesk_azuread.settings import Paths

        root = self.base.conf.installroot or '/'
        settings = os.path.join(root, self.settings_file.lstrip('/'))
        return Paths(root, settings, Paths.under(root).state_dir)

    def _guarded(self, step, failed=MSG_FAILED, unexpected=MSG_UNEXPECTED):
        """Run ``step``; any failure stops dnf with one clear line, never a traceback."""
        try:
            from onedesk_azuread.errors import OnedeskError
        except ImportError as exc:
            raise dnf.exceptions.Error(MSG_LIBRARY % exc) from None
        try:
            return step()
        except dnf.exceptions.Error:
            raise
        except OnedeskError as exc:
            raise dnf.exceptions.Error(failed % exc) from None
        except Exception as exc:  # dnf would print a traceback and carry on
            logger.debug('onedesk-azuread: %r', type(exc))
            raise dnf.exceptions.Error(unexpected % type(exc).__name__) from None

    def resolved(self):
        if not self.enabled:
            return
        self._packages = sorted(
            f'{item.pkg.name}-{item.pkg.evr}.{item.pkg.arch}'
            for item in self.base.transaction
            if item.action in _INSTALLING and item.pkg.name in self.triggers)
        if not self._packages:
            return
        logger.info(MSG_TRIGGERED, ', '.join(self._packages))
        self._guarded(self._preflight)
        if self._packages and self.base.conf.rpmverbosity == 'debug':
            # rpm runs shell scriptlets with `sh -x` at debug level (rpmscript.c); the
            # install scripts source the settings file, so the trace would print the secret.
            logger.warning(MSG_RPM_DEBUG)
            self.base.conf.rpmverbosity = 'info'

    def _preflight(self):
        from onedesk_azuread import transaction

        paths = self._paths()
        result = transaction.preflight(paths, self.require)
        if not result.present and not result.blocking:
            logger.info(MSG_NO_ENTRIES, paths.settings)
            self._packages = []  # nothing to inject or record
            return
        if not result.present:
            raise dnf.exceptions.Error(MSG_NO_ENTRIES_REQUIRED % paths.settings)
        for finding in result.notes:
            logger.info(MSG_NOTE, finding.describe(paths.settings))
        if result.blocking:
            raise dnf.exceptions.Error(
                transaction.blocking_message(paths, result.blocking, paths.root))

    def pre_transaction(self):
        if self._packages:
            self._guarded(self._inject)

    def _inject(self):
        from onedesk_azuread import transaction

        paths = self._paths()
        repaired, self._env = transaction.inject(paths)
        for finding in repaired:
            logger.info(MSG_REPAIRED, finding.code, paths.settings)
        # RPM scriptlets inherit this process's environment.
        os.environ.update(self._env)
        logger.info(MSG_APPLIED, ', '.join(self._packages))

    def transaction(self):
        if not self._packages:
            return
        try:
            self._guarded(self._record, MSG_NOT_RECORDED, MSG_NOT_RECORDED)
        finally:
            for key in self._env:
                os.environ.pop(key, None)
            self._env = {}

    def _record(self):
        from onedesk_azuread import transaction

        transaction.record(self._paths(), self._env, self._packages)
