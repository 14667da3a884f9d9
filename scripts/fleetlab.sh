#!/usr/bin/env bash
# fleetlab.sh up|down|status - the fleet lab (inventories/fleet-lab): a gateway host and
# two replica hosts, each its own systemd container made by labhost.sh (its own systemd,
# filesystem and process tree, reached over SSH as the operator account like any lab
# host), all in the gateway container's ONE network namespace: the gateway reaches each
# replica's vLLM on 127.0.0.1 (distinct ports), and every port the control node uses is
# published by the gateway container on 127.0.0.1 only.
#
#   up      Start (or keep) the gateway container, then the replicas in its namespace
#           (a replica whose namespace is gone, because the gateway was recreated, is
#           recreated too).
#   down    Remove the replicas, then the gateway.
#   status  labhost.sh status of each.
#
# Environment:
#   LLMHOST_FLEET_NAME          container name prefix (default llmhost-fleet):
#                               <prefix>-gateway, <prefix>-replica-1, <prefix>-replica-2
#   LLMHOST_FLEET_SSH_PORT      the gateway's SSH port on 127.0.0.1 (default 2230); the
#                               replicas' are the next ones (2231, 2232)
#   LLMHOST_FLEET_GATEWAY_PORT  the gateway's HTTPS port on 127.0.0.1 (default 8445)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PREFIX="${LLMHOST_FLEET_NAME:-llmhost-fleet}"
readonly SSH_BASE="${LLMHOST_FLEET_SSH_PORT:-2230}"
readonly GATEWAY_PORT="${LLMHOST_FLEET_GATEWAY_PORT:-8445}"
readonly REPLICAS=2  # inventories/fleet-lab/hosts.yml lists two
readonly GATEWAY="${PREFIX}-gateway"

[[ "${PREFIX}" =~ ^[a-z0-9][a-z0-9_.-]{0,40}$ ]] ||
  die "LLMHOST_FLEET_NAME must be lower-case letters, digits, '.', '_' or '-' (got: ${PREFIX})"
if [[ ! "${SSH_BASE}" =~ ^[0-9]{1,5}$ ]] || ((SSH_BASE < 1024 || SSH_BASE + REPLICAS > 65535)); then
  die "LLMHOST_FLEET_SSH_PORT must be a port from 1024 to $((65535 - REPLICAS)) (got: ${SSH_BASE})"
fi

labhost() {
  bash "${LLMHOST_SCRIPTS_DIR}/labhost.sh" "$@"
}

replica_name() { printf '%s-replica-%s\n' "${PREFIX}" "$1"; }

cmd_up() {
  local i extra="" name gw_id mode
  for ((i = 1; i <= REPLICAS; i++)); do
    extra+="$((SSH_BASE + i)):$((SSH_BASE + i)) "
  done
  LLMHOST_LAB_NAME="${GATEWAY}" LLMHOST_LAB_SSH_PORT="${SSH_BASE}" \
    LLMHOST_LAB_GATEWAY_PORT="${GATEWAY_PORT}" LLMHOST_LAB_EXTRA_PORTS="${extra% }" labhost up
  gw_id="$(docker container inspect --format '{{.Id}}' "${GATEWAY}")"
  for ((i = 1; i <= REPLICAS; i++)); do
    name="$(replica_name "${i}")"
    mode="$(docker container inspect --format '{{.HostConfig.NetworkMode}}' "${name}" 2>/dev/null || true)"
    if [[ -n "${mode}" && "${mode}" != "container:${gw_id}" && "${mode}" != "container:${GATEWAY}" ]]; then
      log "${name} is in an old network namespace (${mode:0:22}); recreating it"
      LLMHOST_LAB_NAME="${name}" labhost down
    fi
    LLMHOST_LAB_NAME="${name}" LLMHOST_LAB_NETNS="${GATEWAY}" LLMHOST_LAB_SKIP_PREPARE=1 \
      LLMHOST_LAB_SSH_PORT="$((SSH_BASE + i))" LLMHOST_LAB_SSHD_PORT="$((SSH_BASE + i))" labhost up
  done
  log "fleet lab ${PREFIX} is up: gateway https://127.0.0.1:${GATEWAY_PORT}, SSH 127.0.0.1:${SSH_BASE}-$((SSH_BASE + REPLICAS))"
}

cmd_down() {
  local i
  for ((i = REPLICAS; i >= 1; i--)); do
    LLMHOST_LAB_NAME="$(replica_name "${i}")" labhost down
  done
  LLMHOST_LAB_NAME="${GATEWAY}" labhost down
}

cmd_status() {
  local i
  LLMHOST_LAB_NAME="${GATEWAY}" labhost status || true
  for ((i = 1; i <= REPLICAS; i++)); do
    LLMHOST_LAB_NAME="$(replica_name "${i}")" labhost status || true
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
