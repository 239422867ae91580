#!/usr/bin/env bash
# System packages the test suite uses (Debian): a PostgreSQL server for the store's contract tests and
# headless Chromium for the report test. Run as root (or with sudo). Tests that need them skip without them
# locally, and fail in CI (CI=true).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql chromium >/dev/null
