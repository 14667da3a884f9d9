#!/usr/bin/env bash
# docker-engine.sh [ensure|status|stop] - make sure a Docker engine answers.
#
#   ensure (default)  If `docker info` answers, do nothing. Otherwise install
#                     docker.io when dockerd is missing (root only), then start
#                     dockerd in the background (it outlives this script) and
#                     wait up to 60 s until `docker info` answers.
#   status            Say whether the engine answers, and which dockerd runs.
#   stop              Stop the dockerd that `ensure` started (pidfile below).
#
# The build machines have no systemd as PID 1 and the docker.io package does
# not start its daemon there, so dockerd is started by hand with its own
# exec-root and pidfile:
#   socket   unix:///var/run/docker.sock
#   data     /var/lib/docker
#   exec     /var/run/llmhost-docker
#   pidfile  /var/run/llmhost-dockerd.pid
#   log      /var/log/llmhost-dockerd.log
# On a host where systemd is PID 1 and docker.service exists, `ensure` uses
# `systemctl start docker` instead.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly SOCKET=/var/run/docker.sock
readonly DATA_ROOT=/var/lib/docker
readonly EXEC_ROOT=/var/run/llmhost-docker
readonly PIDFILE=/var/run/llmhost-dockerd.pid
readonly LOGFILE=/var/log/llmhost-dockerd.log
readonly WAIT_SECONDS=60

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# Print the pid from our pidfile when that process is alive.
our_dockerd_pid() {
  local pid
  [[ -r "${PIDFILE}" ]] || return 1
  pid="$(tr -dc '0-9' <"${PIDFILE}")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
  printf '%s\n' "${pid}"
}

show_log_tail() {
  if [[ -r "${LOGFILE}" ]]; then
    log "last 30 lines of ${LOGFILE}:"
    tail -n 30 "${LOGFILE}" >&2 || true
  fi
}

server_version() {
  docker info --format '{{.ServerVersion}}' 2>/dev/null || true
}

systemd_is_pid1() { [[ -d /run/systemd/system ]]; }

# Install what is missing: the docker.io package brings dockerd and a CLI.
ensure_installed() {
  local missing=()
  find_cmd dockerd >/dev/null || missing+=(dockerd)
  have docker || missing+=(docker)
  if ((${#missing[@]})); then
    log "not found: ${missing[*]}"
    apt_install "the Docker engine (${missing[*]})" docker.io
  fi
  find_cmd dockerd >/dev/null || die "dockerd still not found after installing docker.io"
  have docker || die "docker CLI still not found after installing docker.io"
}

wait_until_ready() {
  local start=$1 deadline pid_to_watch=${2:-}
  deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if docker_ready; then
      return 0
    fi
    if [[ -n "${pid_to_watch}" ]] && ! kill -0 "${pid_to_watch}" 2>/dev/null; then
      log "dockerd (pid ${pid_to_watch}) exited during start-up"
      return 1
    fi
    sleep 0.5
  done
  log "docker info did not answer within ${WAIT_SECONDS}s (waited $(elapsed_since "${start}"))"
  return 1
}

cmd_ensure() {
  local start pid dockerd
  start="$(now_us)"
  if docker_ready; then
    log "docker engine already answering (server $(server_version))"
    return 0
  fi
  one_at_a_time docker-engine
  if docker_ready; then  # another run started it while this one waited
    log "docker engine answering (server $(server_version)), started by another run"
    return 0
  fi
  if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != "unix://${SOCKET}" ]]; then
    die "DOCKER_HOST=${DOCKER_HOST} does not answer; unset DOCKER_HOST to use the local engine on ${SOCKET}"
  fi
  if ! is_root; then
    if [[ -S "${SOCKET}" ]]; then
      die "the docker engine on ${SOCKET} does not answer for user $(id -un): is the daemon running and are you in the 'docker' group? (or run this script as root)"
    fi
    die "no docker engine is running; run this script as root (sudo bash $0) to install and start it"
  fi
  ensure_installed
  dockerd="$(find_cmd dockerd)"

  if pid="$(our_dockerd_pid)"; then
    log "dockerd (pid ${pid}) is already running but not answering yet; waiting up to ${WAIT_SECONDS}s ..."
    if wait_until_ready "${start}" "${pid}"; then
      log "docker engine ready (server $(server_version)) after $(elapsed_since "${start}")"
      return 0
    fi
    show_log_tail
    die "dockerd (pid ${pid}) does not answer; stop it with: bash $0 stop"
  fi

  if systemd_is_pid1 && have systemctl && systemctl cat docker.service >/dev/null 2>&1; then
    log "starting docker.service with systemctl ..."
    systemctl start docker.service || die "systemctl start docker.service failed; see: journalctl -u docker.service"
    wait_until_ready "${start}" || die "docker.service started but docker info does not answer; see: journalctl -u docker.service"
    log "docker engine ready (server $(server_version)) after $(elapsed_since "${start}")"
    return 0
  fi

  log "starting ${dockerd} in the background (log: ${LOGFILE}) ..."
  mkdir -p "${EXEC_ROOT}" "${DATA_ROOT}" "$(dirname "${LOGFILE}")"
  printf '=== %s llmhost docker-engine.sh starting %s\n' "$(date -Is)" "${dockerd}" >>"${LOGFILE}"
  # setsid + nohup: own session, immune to the caller's hangup and job control; 9>&-:
  # it must not inherit (and hold for ever) one_at_a_time's lock.
  setsid nohup "${dockerd}" \
    -H "unix://${SOCKET}" \
    --data-root "${DATA_ROOT}" \
    --exec-root "${EXEC_ROOT}" \
    --pidfile "${PIDFILE}" \
    >>"${LOGFILE}" 2>&1 </dev/null 9>&- &
  pid=$!
  disown "${pid}" 2>/dev/null || true

  if ! wait_until_ready "${start}" "${pid}"; then
    show_log_tail
    die "could not start the docker engine (see ${LOGFILE})"
  fi
  pid="$(our_dockerd_pid || printf '%s' "${pid}")"
  log "docker engine ready (server $(server_version), dockerd pid ${pid}) after $(elapsed_since "${start}")"
}

cmd_status() {
  local pid
  if ! have docker; then
    log "docker CLI: not installed"
  else
    log "docker CLI: $(command -v docker) ($(docker version --format '{{.Client.Version}}' 2>/dev/null || echo unknown))"
  fi
  if docker_ready; then
    log "docker engine: answering (server $(server_version))"
  else
    log "docker engine: NOT answering"
  fi
  if pid="$(our_dockerd_pid)"; then
    log "dockerd started by this script: pid ${pid} (log ${LOGFILE})"
  else
    log "dockerd started by this script: none (pidfile ${PIDFILE})"
  fi
  docker_ready
}

cmd_stop() {
  local pid i
  is_root || die "stopping dockerd needs root"
  if ! pid="$(our_dockerd_pid)"; then
    log "no dockerd started by this script is running (pidfile ${PIDFILE})"
    return 0
  fi
  log "stopping dockerd (pid ${pid}) ..."
  kill -TERM "${pid}"
  for ((i = 0; i < 60; i++)); do
    kill -0 "${pid}" 2>/dev/null || {
      log "dockerd stopped"
      return 0
    }
    sleep 0.5
  done
  die "dockerd (pid ${pid}) still running after 30s"
}

main() {
  local cmd=${1:-ensure}
  case "${cmd}" in
    ensure) cmd_ensure ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      die "unknown command: ${cmd}"
      ;;
  esac
}

main "$@"
