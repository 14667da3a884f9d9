#!/usr/bin/env bash
# fleet-lab.sh [ARGS...] - make fleet-lab: the fleet lab's whole loop (playbooks/fleet-lab.yml)
# on inventories/fleet-lab, as one run of the entry point (one run id, one bundle under
# evidence/fleet-lab/). First the two releases' models: the tiny GPT-2 trained on the
# control node for LLMHOST_FLEET_V1_STEPS (2) and LLMHOST_FLEET_V2_STEPS (4) steps, kept in
# .cache/fleet/models/ (trained once); then the fleet's containers (scripts/fleetlab.sh up).
# The fleet is removed at the end unless LLMHOST_FLEET_KEEP=1. ARGS go to ansible-playbook.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
readonly ROOT=${LLMHOST_ROOT}
readonly PY="${ROOT}/.venv/bin/python"
readonly MODELS="${ROOT}/.cache/fleet/models"

train() {
  local release=$1 steps=$2 out="${MODELS}/$1"
  if [[ ! "${steps}" =~ ^[0-9]+$ ]] || ((steps < 1)); then
    die "LLMHOST_FLEET_${release^^}_STEPS must be a whole number of steps >= 1 (got: ${steps})"
  fi
  if [[ -f "${out}/openllm_gpu_training_run/hf_export/config.json" && -f "${out}/.steps-${steps}" ]]; then
    log "release ${release}: model already trained (${steps} steps, ${out})"
    return 0
  fi
  rm -rf "${out}"
  log "release ${release}: training the tiny GPT-2 for ${steps} steps on the control node"
  (cd "${ROOT}" && "${PY}" -m training.train --config tiny --steps "${steps}" --out "${out}" >"${MODELS}/${release}.log" 2>&1) ||
    die "training release ${release} failed: see ${MODELS}/${release}.log"
  touch "${out}/.steps-${steps}"
}

mkdir -p "${MODELS}"
train v1 "${LLMHOST_FLEET_V1_STEPS:-2}"
train v2 "${LLMHOST_FLEET_V2_STEPS:-4}"
bash "${LLMHOST_SCRIPTS_DIR}/fleetlab.sh" up
status=0
LLMHOST_VAULT_PASSWORD_FILE="${LLMHOST_VAULT_PASSWORD_FILE:-${ROOT}/.cache/vault/lab.pass}" \
  "${PY}" "${ROOT}/scripts/llmhost.py" fleet-lab -i "${ROOT}/inventories/fleet-lab" "$@" || status=$?
if [[ "${LLMHOST_FLEET_KEEP:-0}" != 1 ]]; then
  bash "${LLMHOST_SCRIPTS_DIR}/fleetlab.sh" down
fi
exit "${status}"
