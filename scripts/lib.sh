# shellcheck shell=bash
# Shared helpers for the llmhost lab-host scripts (docker-engine.sh,
# base-image.sh, labhost.sh). Source this file; do not execute it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides: log/warn/die, repo root detection (LLMHOST_REPO_ROOT, LLMHOST_ROOT),
# the lab's state paths (LAB_SSH_DIR, LAB_SSH_KEY, LAB_VAULT_PASS), root checks,
# apt installation of missing packages, a docker readiness probe and a
# sub-second timer.

if [[ -n "${LLMHOST_LIB_LOADED:-}" ]]; then
  return 0
fi
LLMHOST_LIB_LOADED=1

# The scripts live in <repo>/scripts; everything else is found from there, so
# they work from any working directory.
LLMHOST_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
LLMHOST_REPO_ROOT="$(cd "${LLMHOST_SCRIPTS_DIR}/.." && pwd -P)"
# Where the lab's state lives (.cache/lab, .cache/vault, the lab's vault file):
# LLMHOST_ROOT when the caller sets it (the tests use a temporary folder), else
# this repository.
if [[ -n "${LLMHOST_ROOT:-}" ]]; then
  if ! LLMHOST_ROOT="$(cd "${LLMHOST_ROOT}" 2>/dev/null && pwd -P)"; then
    printf '[llmhost] ERROR: LLMHOST_ROOT is not a folder\n' >&2
    exit 1
  fi
else
  LLMHOST_ROOT=${LLMHOST_REPO_ROOT}
fi
export LLMHOST_SCRIPTS_DIR LLMHOST_REPO_ROOT LLMHOST_ROOT
# The lab host's SSH key pair and host key pinning, and its vault password (used by
# labhost.sh and lab-init.sh, which source this file).
# shellcheck disable=SC2034
LAB_SSH_DIR="${LLMHOST_ROOT}/.cache/lab/ssh"
# shellcheck disable=SC2034
LAB_SSH_KEY="${LAB_SSH_DIR}/id_ed25519"
# shellcheck disable=SC2034
LAB_VAULT_PASS="${LLMHOST_ROOT}/.cache/vault/lab.pass"

# --- messages ---------------------------------------------------------------
# Progress and errors go to stderr so that stdout stays usable for data.

log() { printf '[llmhost] %s\n' "$*" >&2; }
warn() { printf '[llmhost] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[llmhost] ERROR: %s\n' "$*" >&2
  exit 1
}

# --- environment checks -----------------------------------------------------

is_root() { [[ "$(id -u)" -eq 0 ]]; }

have() { command -v "$1" >/dev/null 2>&1; }

# find_cmd NAME: print the path of NAME from PATH or the sbin directories
# (a non-root PATH often lacks /usr/sbin, where dockerd and debootstrap live).
find_cmd() {
  local name=$1 dir
  if have "${name}"; then
    command -v "${name}"
    return 0
  fi
  for dir in /usr/local/sbin /usr/sbin /sbin; do
    if [[ -x "${dir}/${name}" ]]; then
      printf '%s\n' "${dir}/${name}"
      return 0
    fi
  done
  return 1
}

# one_at_a_time NAME: hold a machine-wide lock (${TMPDIR:-/tmp}/llmhost-NAME.lock, on
# file descriptor 9) until this script exits: make test's lanes (and two checkouts on one
# machine) may ask for the same engine or image at once; the second waits, then finds it ready.
one_at_a_time() {
  local lock="${TMPDIR:-/tmp}/llmhost-$1.lock"
  exec 9>>"${lock}"
  if ! flock -n 9; then
    log "waiting for another run to finish with ${1} (${lock})"
    flock 9
  fi
}

# apt_install WHY PACKAGE...: install Debian packages with apt-get (root only).
# Without root it stops and says exactly what is missing and how to get it.
apt_install() {
  local why=$1 out rc
  shift
  if ! is_root; then
    die "missing for ${why}: $*. Install as root: apt-get update && apt-get install -y $*"
  fi
  have apt-get || die "missing for ${why}: $* (and no apt-get on this machine); install them by hand"
  log "installing $* (needed for ${why}) with apt-get ..."
  out="$(mktemp /tmp/llmhost-apt.XXXXXX)"
  rc=0
  {
    # Wait for a dpkg lock held by another apt run instead of failing at once.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
        --no-install-recommends "$@"
  } >"${out}" 2>&1 || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    tail -n 30 "${out}" >&2 || true
    rm -f "${out}"
    die "apt-get failed (rc=${rc}) while installing: $*"
  fi
  rm -f "${out}"
  log "installed $*"
}

# --- docker -----------------------------------------------------------------

# docker_ready: true when a docker CLI is present and its daemon answers.
docker_ready() {
  have docker && docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

# --- timing -----------------------------------------------------------------

# now_us: microseconds since the epoch (EPOCHREALTIME, any locale).
now_us() { printf '%s\n' "${EPOCHREALTIME//[!0-9]/}"; }

# elapsed_since START_US: prints e.g. "1.3s" or "2m05s".
elapsed_since() {
  local start=$1 now ms
  now="$(now_us)"
  ms=$(((now - start) / 1000))
  if ((ms < 60000)); then
    printf '%d.%ds\n' $((ms / 1000)) $(((ms % 1000) / 100))
  else
    printf '%dm%02ds\n' $((ms / 60000)) $(((ms % 60000) / 1000))
  fi
}
