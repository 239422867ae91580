# Helpers sourced by the scripts in this folder (not a command of its own).
say() { echo "clowncar-setup: $*"; }
die() { echo "clowncar-setup: error: $*" >&2; exit 1; }
# The command prefix that runs as root: empty as root, sudo if it works without a prompt, else fails.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}
# apt_install PKG...: Debian/Ubuntu packages, as root or with sudo; fails (status 1) where neither is possible
# or CLOWNCAR_NO_APT is set (the scripts' own tests set it: a test never installs system packages).
apt_install() {
  [ -z "${CLOWNCAR_NO_APT:-}" ] || return 1
  command -v apt-get >/dev/null || return 1
  as_root true 2>/dev/null || return 1
  say "installing system packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${CLOWNCAR_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq >/dev/null || return 1
    CLOWNCAR_APT_UPDATED=1
  fi
  local log; log=$(mktemp)
  as_root apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; rm -f "$log"; return 1; }
  rm -f "$log"
}
