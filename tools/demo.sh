#!/usr/bin/env bash
# The product's story on a throw-away root: nothing here touches the real /root.
# The credentials are made up, in Azure's real formats.
set -euo pipefail

ROOT=$(mktemp -d /tmp/onedesk-demo.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
mkdir -m 700 -p "$ROOT/root"
CLIENT_ID=0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e
DEMO_SECRET='Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7'
SECRET_ID=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
tool() { echo "\$ onedesk-azuread $*" >&2; onedesk-azuread --root "$ROOT" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1. What to register in Azure for https://helpdesk.example.com"
tool app-registration --url https://helpdesk.example.com

step "2. An existing /root/.OneDesk with the server's other settings"
printf 'DB_HOST=db.internal\r\n# managed by the OneDesk installer\r\nSMTP_PORT=587\r\n' > "$ROOT/root/.OneDesk"
chmod 644 "$ROOT/root/.OneDesk"
cat -A "$ROOT/root/.OneDesk"

step "3. Configure: the secret comes from stdin, never from the command line"
printf '%s\n' "$DEMO_SECRET" | tool set --client-id "$CLIENT_ID" --secret-stdin --expires 2028-05-31

step "4. Show: the secret is masked"
tool show

step "5. Check"
tool check

step "6. Someone edits the file on Windows: CRLF line ends, braces, spaces around '='"
printf 'DB_HOST=db.internal\r\nAZUREAD_CID = {%s}\r\nAZUREAD_CIS=%s\r\n' "$CLIENT_ID" "$DEMO_SECRET" > "$ROOT/root/.OneDesk"
chmod 644 "$ROOT/root/.OneDesk"
tool check || echo "(exit $?: OneDesk would not get correct values)" >&2

step "7. check --fix repairs it (a backup is kept; the other lines are untouched)"
tool check --fix
cat -A "$ROOT/root/.OneDesk" | sed "s/$DEMO_SECRET/<secret>/"
ls -l "$ROOT/root" | sed 1d

step "8. The Secret ID pasted instead of the secret Value is refused; nothing changes"
before=$(sha256sum < "$ROOT/root/.OneDesk")
printf '%s\n' "$SECRET_ID" | tool set --secret-stdin || echo "(exit $?)" >&2
[ "$before" = "$(sha256sum < "$ROOT/root/.OneDesk")" ] && echo "file unchanged" >&2

step "9. An entry only bash can follow (inside an if block) is never edited"
printf 'DB_HOST=db.internal\nif [ -e /etc/onedesk/staging ]; then\n  AZUREAD_CIS=%s\nfi\n' "$DEMO_SECRET" > "$ROOT/root/.OneDesk"
chmod 600 "$ROOT/root/.OneDesk"
before=$(sha256sum < "$ROOT/root/.OneDesk")
tool check || echo "(exit $?)" >&2
printf '%s\n' "$DEMO_SECRET" | tool set --secret-stdin --force || echo "(exit $?: even --force does not write it)" >&2
[ "$before" = "$(sha256sum < "$ROOT/root/.OneDesk")" ] && echo "file unchanged" >&2

step "Done: every write was atomic, locked, mode 0600, with a .bak beside it, and parsed by bash -n first."
