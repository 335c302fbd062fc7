# Sourced by scripts/run and scripts/test: installs what the build and the
# tests need on a fresh Debian machine, only when it is missing.

# One warm target directory outside the clone: RocksDB compiles from C++
# source (about 14 minutes per build profile), so every command here shares
# the release profile and this directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hookrelay/target}"

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

need_rust() {
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install Rust from https://rustup.rs first" >&2
    exit 1
  }
}
