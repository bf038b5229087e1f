#!/bin/sh
# Makes the TLS certificate on first start, puts the sample mail from
# config/demo/ (mounted at /seed) into the demo INBOX once, runs Dovecot in
# the foreground.
set -eu
tls=/run/dovecot-tls
if [ ! -s "$tls/dovecot.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=dovecot \
        -addext subjectAltName=DNS:dovecot,DNS:localhost \
        -keyout "$tls/dovecot.key" -out "$tls/dovecot.crt" 2>/dev/null
    chmod 0600 "$tls/dovecot.key"
    chmod 0644 "$tls/dovecot.crt"
fi
# Straight into the Maildir's new/: Dovecot picks the files up as new mail
# (doveadm save would need the running server's auth socket).
maildir=/srv/mail/demo@example.com/Maildir
if [ -d /seed ] && [ ! -e /srv/mail/.seeded ]; then
    mkdir -p "$maildir/new" "$maildir/cur" "$maildir/tmp"
    n=0
    for eml in /seed/*.eml; do
        [ -e "$eml" ] || continue
        n=$((n + 1))
        cp "$eml" "$maildir/new/$(date +%s).seed$n.dovecot"
    done
    chown -R vmail:vmail /srv/mail/demo@example.com
    touch /srv/mail/.seeded
fi
exec dovecot -c /etc/dovecot/dovecot.conf -F
