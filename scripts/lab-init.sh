#!/usr/bin/env bash
# lab-init.sh - the lab's control-node credentials, made once and kept.
#
# The lab host is reached the way a rented host is: SSH with a key as a
# non-root user with sudo, secrets from an Ansible vault. This makes what the
# operator of a rented host brings along, each only when it is absent (an
# existing file is never overwritten; a second run changes nothing):
#
#   .cache/lab/ssh/id_ed25519(.pub)   the SSH key pair for the lab's operator
#                                     account (folder 0700, key 0600)
#   .cache/vault/lab.pass             the lab's vault password (0600, folder 0700)
#   inventories/lab/group_vars/all/vault.yml
#                                     vault-encrypted (git-ignored):
#                                       vault_llmhost_vllm_api_key
#                                       vault_gateway_keys: {lab_eval, lab_load}
#                                       vault_backup_password
#                                     values from .cache/secrets/ when an older
#                                     lab run left them there, else random
#
# A vault.yml that lab.pass does not open is refused (delete both to make a
# new pair). A vault of an older lab that lacks a key made later
# (vault_backup_password) gets it added, its other keys kept. scripts/labhost.sh
# up runs this first.
#
# Environment:
#   LLMHOST_ROOT            where the files above go (default: this repository)
#   LLMHOST_ANSIBLE_VAULT   the ansible-vault to use (default: .venv/bin/ansible-vault
#                           of LLMHOST_ROOT, then of this repository, then PATH)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
readonly REPO_ROOT=${LLMHOST_REPO_ROOT}
readonly ROOT=${LLMHOST_ROOT}

readonly SSH_DIR=${LAB_SSH_DIR}
readonly SSH_KEY=${LAB_SSH_KEY}
readonly VAULT_PASS=${LAB_VAULT_PASS}
readonly VAULT_PASS_DIR=${VAULT_PASS%/*}
readonly VAULT_FILE="${ROOT}/inventories/lab/group_vars/all/vault.yml"
readonly LEGACY_SECRETS="${ROOT}/.cache/secrets"

usage() {
  sed -n '2,28s/^# \{0,1\}//p' "${LLMHOST_SCRIPTS_DIR}/lab-init.sh"
}

# Paths in messages: relative to the root when under it.
rel() { printf '%s\n' "${1#"${ROOT}/"}"; }

find_ansible_vault() {
  local c
  for c in "${LLMHOST_ANSIBLE_VAULT:-}" "${ROOT}/.venv/bin/ansible-vault" "${REPO_ROOT}/.venv/bin/ansible-vault"; do
    if [[ -n "${c}" && -x "${c}" ]]; then
      printf '%s\n' "${c}"
      return 0
    fi
  done
  have ansible-vault || die "ansible-vault not found; create the venv first: make venv"
  command -v ansible-vault
}

TMP=""
cleanup() { [[ -z "${TMP}" ]] || rm -f "${TMP}"; }
trap cleanup EXIT

ssh_key_pair() {
  install -d -m 0700 "${SSH_DIR}"
  if [[ -e "${SSH_KEY}" ]]; then
    chmod 0600 "${SSH_KEY}"
    if [[ ! -e "${SSH_KEY}.pub" ]]; then
      ssh-keygen -y -f "${SSH_KEY}" >"${SSH_KEY}.pub.tmp" && mv "${SSH_KEY}.pub.tmp" "${SSH_KEY}.pub"
      log "restored $(rel "${SSH_KEY}").pub from the private key"
    fi
    return 0
  fi
  [[ ! -e "${SSH_KEY}.pub" ]] ||
    die "$(rel "${SSH_KEY}").pub exists without its private key; remove it to make a new pair"
  have ssh-keygen || apt_install "the lab's SSH key" openssh-client
  ssh-keygen -q -t ed25519 -N '' -C llmhost-lab -f "${SSH_KEY}" </dev/null >/dev/null
  chmod 0600 "${SSH_KEY}"
  log "created the lab's SSH key pair: $(rel "${SSH_KEY}")"
}

vault_password() {
  install -d -m 0700 "${VAULT_PASS_DIR}"
  if [[ -e "${VAULT_PASS}" ]]; then
    chmod 0600 "${VAULT_PASS}"
    return 0
  fi
  [[ ! -e "${VAULT_FILE}" ]] ||
    die "$(rel "${VAULT_FILE}") exists but its password file $(rel "${VAULT_PASS}") is missing: the vault cannot be opened. Restore the password file, or delete $(rel "${VAULT_FILE}") to make a new vault (new lab keys)."
  TMP="$(mktemp "${VAULT_PASS_DIR}/.lab.pass.XXXXXX")"
  python3 -c 'import secrets, string
abc = string.ascii_letters + string.digits
print("".join(secrets.choice(abc) for _ in range(48)))' >"${TMP}"
  chmod 0600 "${TMP}"
  mv "${TMP}" "${VAULT_PASS}"
  TMP=""
  log "created the lab's vault password: $(rel "${VAULT_PASS}")"
}

# The vault's plaintext, on stdout only: the keys an older lab run left in
# .cache/secrets/ (ansible's password lookup: "VALUE [salt=...]"), else random.
vault_plaintext() {
  python3 - "${LEGACY_SECRETS}" <<'PY'
import re
import secrets
import string
import sys
from pathlib import Path

legacy = Path(sys.argv[1])
abc = string.ascii_letters + string.digits


def value(name: str) -> str:
    f = legacy / name
    if f.is_file():
        words = f.read_text(encoding="utf-8").split()
        if words and re.fullmatch(r"[A-Za-z0-9._~+/=-]+", words[0]):
            return words[0]
        sys.exit(f"[llmhost] ERROR: {f} is not a usable key (one word of letters and digits)")
    return "".join(secrets.choice(abc) for _ in range(40))


print(f"vault_llmhost_vllm_api_key: '{value('vllm_api_key')}'")
print("vault_gateway_keys:")
for tenant in ("lab_eval", "lab_load"):
    print(f"  {tenant}: '{value('gateway_key_' + tenant)}'")
PY
  backup_password_line
}

# The restic repository's password (roles/backup), random.
backup_password_line() {
  python3 -c 'import secrets, string
abc = string.ascii_letters + string.digits
print("vault_backup_password: \x27" + "".join(secrets.choice(abc) for _ in range(40)) + "\x27")'
}

# Keys added after a lab's vault was made: appended to the decrypted text in a pipe, the
# vault written anew (same password), its other keys as they were.
vault_upgrade() {
  local av=$1
  if "${av}" view --vault-password-file "${VAULT_PASS}" "${VAULT_FILE}" | grep -q '^vault_backup_password:'; then
    return 0
  fi
  TMP="$(mktemp "${VAULT_PASS_DIR}/.vault.yml.XXXXXX")"
  { "${av}" view --vault-password-file "${VAULT_PASS}" "${VAULT_FILE}" && backup_password_line; } |
    "${av}" encrypt --vault-password-file "${VAULT_PASS}" --output "${TMP}" - \
      2> >(grep -v '^Encryption successful' >&2) ||
    die "could not add vault_backup_password to $(rel "${VAULT_FILE}") (see above)"
  "${av}" view --vault-password-file "${VAULT_PASS}" "${TMP}" | grep -q '^vault_backup_password:' ||
    die "the rewritten vault does not hold vault_backup_password"
  chmod 0600 "${TMP}"
  mv "${TMP}" "${VAULT_FILE}"
  TMP=""
  log "added vault_backup_password to $(rel "${VAULT_FILE}") (its other keys kept)"
}

# The plaintext goes through a pipe into ansible-vault; only the encrypted
# text is written, first beside the password (0700 folder), then moved.
vault_file() {
  local av=$1
  if [[ -e "${VAULT_FILE}" ]]; then
    if ! "${av}" view --vault-password-file "${VAULT_PASS}" "${VAULT_FILE}" >/dev/null 2>&1; then
      die "$(rel "${VAULT_FILE}") cannot be decrypted with $(rel "${VAULT_PASS}"): these two files disagree. Restore the matching password file, or delete both to make a new pair (the lab's API and gateway keys change): rm -f ${VAULT_FILE} ${VAULT_PASS}"
    fi
    vault_upgrade "${av}"
    return 0
  fi
  (umask 022 && mkdir -p "$(dirname "${VAULT_FILE}")")
  TMP="$(mktemp "${VAULT_PASS_DIR}/.vault.yml.XXXXXX")"
  vault_plaintext |
    "${av}" encrypt --vault-password-file "${VAULT_PASS}" --output "${TMP}" - \
      2> >(grep -v '^Encryption successful' >&2) ||
    die "could not write the encrypted $(rel "${VAULT_FILE}") (see above)"
  "${av}" view --vault-password-file "${VAULT_PASS}" "${TMP}" >/dev/null 2>&1 ||
    die "the new vault does not open with $(rel "${VAULT_PASS}")"
  chmod 0600 "${TMP}"
  mv "${TMP}" "${VAULT_FILE}"
  TMP=""
  if [[ -d "${LEGACY_SECRETS}" ]]; then
    log "created $(rel "${VAULT_FILE}") (vault; keys found in $(rel "${LEGACY_SECRETS}") reused)"
  else
    log "created $(rel "${VAULT_FILE}") (vault, new random keys)"
  fi
}

main() {
  case "${1:-}" in
    "") ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
  umask 077
  ssh_key_pair
  vault_password
  vault_file "$(find_ansible_vault)"
}

main "$@"
