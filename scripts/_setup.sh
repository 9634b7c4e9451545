# Sourced by scripts/demo and scripts/test (not a command): the virtual environment in
# the checkout, and Debian packages when something is missing.
#
#   CIVICWATT_VENV   the virtual environment's directory (default: .venv in the checkout)
#   PYTHON           the Python to create it with (default: the newest python3.1x >= 3.11 on PATH)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CIVICWATT_VENV:-$ROOT/.venv}"
MIN_PYTHON="3.11"

say() { printf '%s\n' "$*" >&2; }

# The first Python >= 3.11 on PATH (empty when there is none).
find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Whether the virtual environment exists and runs a Python >= 3.11.
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

# The Debian packages needed to create the virtual environment (none when it exists or can be made).
venv_packages() {
  venv_ok && return 0
  local py
  if ! py="$(find_python)"; then
    echo "python3 python3-venv"
  elif ! "$py" -c 'import ensurepip' 2>/dev/null; then
    echo "python3-venv"  # Debian/Ubuntu ship venv's pip bootstrap separately
  fi
}

# Install Debian packages: apt-get as root, else sudo apt-get, else print the exact
# command and return 1. Sets INSTALLED_PACKAGES=1 when it installed something.
apt_install() {
  [ "$#" -gt 0 ] || return 0
  local cmd="apt-get install -y --no-install-recommends $*"
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: $* (Debian package names). This machine has no apt-get: install the equivalents, e.g. on Debian/Ubuntu:"
    say "    sudo apt-get update && sudo $cmd"
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      say "missing Debian packages: $*. Run as root, then run this again:"
      say "    apt-get update && $cmd"
      return 1
    fi
  fi
  say "installing Debian packages: ${sudo:+sudo }$cmd"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  INSTALLED_PACKAGES=1
}

# Create (or reuse) the virtual environment and install CivicWatt into it, editable,
# with the extras given ("" or "test"); pip runs only when pyproject.toml or the extras
# changed since the last install.
ensure_venv() {
  local extras="$1" spec="$ROOT" py stamp hash
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  if ! venv_ok; then
    if ! py="$(find_python)"; then
      say "CivicWatt needs Python $MIN_PYTHON or newer (Debian/Ubuntu: apt-get install python3 python3-venv;"
      say "macOS: brew install python@3.12, or the installer from python.org)."
      return 1
    fi
    say "creating the virtual environment $VENV with $py ($("$py" -c 'import platform; print(platform.python_version())'))"
    "$py" -m venv --clear "$VENV" || return 1
  fi
  stamp="$VENV/.civicwatt-installed"  # one line per install: "SHA256-of-pyproject.toml [EXTRAS]"
  hash="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
          "$ROOT/pyproject.toml")"
  if [ -x "$VENV/bin/civicwatt" ] && [ -f "$stamp" ] \
     && if [ -n "$extras" ]; then grep -qxF "$hash [$extras]" "$stamp"; else grep -q "^$hash " "$stamp"; fi; then
    return 0  # installed from this pyproject.toml (any extras include the plain install)
  fi
  say "installing CivicWatt${extras:+ with [$extras]} into $VENV (pip install -e; a minute or two the first time) ..."
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" || return 1
  { grep "^$hash " "$stamp" 2>/dev/null; echo "$hash [$extras]"; } | sort -u > "$stamp.new" && mv "$stamp.new" "$stamp"
}
