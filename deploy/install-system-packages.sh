#!/usr/bin/env bash
# Installs the Debian packages the local stack needs, only those that are missing.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v dovecot >/dev/null || need+=(dovecot-imapd dovecot-pop3d)
[ -e /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
# Sieve for the forwarding rules: delivery over LMTP runs the scripts, ManageSieve uploads
# them, and the system Python runs the stack's sendmail for redirects
# (mailroom/console/stack/sieve.py).
[ -e /usr/lib/dovecot/modules/lib90_sieve_plugin.so ] || need+=(dovecot-sieve)
[ -e /usr/lib/dovecot/managesieve ] || need+=(dovecot-managesieved)
[ -e /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The dashboard's browser test drives Debian's Chromium (tests/web/test_web_browser.py).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
