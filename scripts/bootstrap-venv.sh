#!/usr/bin/env bash
# Create or update the control-node venv from the pinned requirements.
#   scripts/bootstrap-venv.sh VENV STAMP
# The stamp file's name carries a hash of the requirement files, so an unchanged
# tree makes this a no-op (the Makefile does not even call it then).
# PyTorch: training/requirements.txt pins torch exactly. On a machine whose pip
# has no CPU build of that version configured, set LLMHOST_PIP_EXTRA_INDEX to
# PyTorch's CPU wheel index (or a local wheelhouse) to avoid the multi-GB CUDA build.
set -euo pipefail
venv=${1:?usage: bootstrap-venv.sh VENV STAMP}
stamp=${2:?usage: bootstrap-venv.sh VENV STAMP}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-python3}
log() { printf '[llmhost] %s\n' "$*"; }
die() { printf '[llmhost] error: %s\n' "$*" >&2; exit 1; }

command -v "$py" >/dev/null || die "$py not found: install Python 3.11 or newer (Debian: apt-get install python3)"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$py is $("$py" -V 2>&1); llmhost needs Python 3.11 or newer on the control node"
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # Debian's python3 ships without ensurepip; apt_install waits for a held dpkg lock.
    (source "${root}/scripts/lib.sh" && apt_install "the control-node venv" python3-venv)
  else
    die "$py cannot create a venv: as root run 'apt-get install python3-venv'"
  fi
fi

start=$(date +%s)
[ -x "$venv/bin/python" ] || { log "creating $venv"; "$py" -m venv "$venv"; }
extra=()
[ -n "${LLMHOST_PIP_EXTRA_INDEX:-}" ] && extra=(--extra-index-url "$LLMHOST_PIP_EXTRA_INDEX")
log "installing the pinned control-node tools into $venv (first time: about a minute)"
# pip byte-compiles every file it installs, one after another: 45 s of a 69 s install on 2
# cores. Ansible's collections (15,000 of the 30,000 files) never use those .pyc files
# (its collection loader compiles from source), so they are left out, and the rest is
# compiled on every core: 46 s in all. A file only a newer Python parses (torch ships
# one) fails to compile here as it does under pip, which is why the exit status is not
# checked; importing such a file fails the same way either way.
"$venv/bin/pip" install --disable-pip-version-check --progress-bar off -q --no-compile "${extra[@]}" \
  -r "$root/requirements.txt" -r "$root/training/requirements.txt" -c "$root/constraints.txt"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$venv/bin/python" -m compileall -q -j 0 -x '/ansible_collections/' "$site" > /dev/null || true
rm -f "$venv"/.llmhost-*
touch "$stamp"
log "venv ready in $(( $(date +%s) - start )) s"
