"""Safe management of OneDesk's Azure AD sign-in settings in /root/.OneDesk."""

from __future__ import annotations

__version__ = "0.1.0"

CLIENT_ID = "AZUREAD_CID"
SECRET = "AZUREAD_CIS"
KEYS = (CLIENT_ID, SECRET)
