#!/usr/bin/env bash
# labhost.sh up|down|status|shell [CMD...] - the local lab host container.
#
# A Docker container running systemd as PID 1 from llmhost-base:<distro>
# (built by base-image.sh), reachable only through ports published on
# 127.0.0.1, and by Ansible like a rented host: SSH as a non-root user with
# sudo (inventories/lab/hosts.yml). It is not --privileged (that fails on the build machines: the
# VM's capability bounding set lacks CAP_SYS_RESOURCE); it gets SYS_ADMIN, DAC_READ_SEARCH,
# unconfined seccomp/apparmor, the host cgroup namespace and tmpfs mounts.
#
#   up       Make the lab's key pair and vault (lab-init.sh), start the
#            engine and build the base image when needed, then create/start
#            the container and wait until systemd reports "running". Then,
#            as a provider's cloud-init would, set up the operator account
#            (LLMHOST_LAB_USER, sudo without password, the key pair's public
#            key in authorized_keys), wait for sshd and pin the container's
#            host key in .cache/lab/ssh/known_hosts (rewritten on every up:
#            a recreated container has a new one). Idempotent: an up-to-date
#            running container is left alone, a stopped one is started, an
#            outdated one is recreated.
#   down     Remove the container (nothing to do when it is absent); the
#            key pair and the vault stay.
#   status   Container state, image, published ports, systemd state.
#   shell    Interactive login shell in the container, or run CMD there.
#
# Environment:
#   LLMHOST_LAB_NAME           container name (default llmhost-lab)
#   LLMHOST_LAB_DISTRO         debian12 (default) or debian13
#   LLMHOST_LAB_GATEWAY_PORT   host port for the gateway, published as
#                              127.0.0.1:PORT:443 (default 8443)
#   LLMHOST_LAB_SSH_PORT       host port for SSH, published as
#                              127.0.0.1:PORT:22 (default 2222; the inventory's
#                              ansible_port must match)
#   LLMHOST_LAB_USER           the operator account (default llmops; the
#                              inventory's ansible_user must match)
#   LLMHOST_LAB_EXTRA_PORTS    extra "HOST:CONTAINER[/udp]" pairs, space
#                              separated, always published on 127.0.0.1
#   LLMHOST_LAB_NETNS          join the network namespace of this running lab
#                              container instead of publishing ports (a fleet:
#                              every host reaches the others on 127.0.0.1; that
#                              container publishes this one's SSH port)
#   LLMHOST_LAB_SSHD_PORT      the port sshd listens on in the container
#                              (default 22; distinct per container of a shared
#                              namespace, and then equal to LLMHOST_LAB_SSH_PORT)
#   LLMHOST_LAB_BOOT_TIMEOUT   seconds to wait for systemd, and then for
#                              sshd (default 90)
#   LLMHOST_LAB_SHM_SIZE       size of /dev/shm (default 2g: vLLM's engine
#                              needs far more than docker's 64m)
#   LLMHOST_LAB_SKIP_PREPARE   1 = do not run docker-engine.sh/base-image.sh
#                              on `up` (engine and image must already exist)
#   LLMHOST_ROOT               where .cache/lab/ssh and the vault are
#                              (default: this repository)
#
# Test traffic goes to the ports published on 127.0.0.1, never to the
# container's bridge address.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
readonly ROOT=${LLMHOST_ROOT}

readonly NAME="${LLMHOST_LAB_NAME:-llmhost-lab}"
readonly HOSTNAME_IN_LAB=llmhost-lab
readonly DISTRO="${LLMHOST_LAB_DISTRO:-debian12}"
readonly IMAGE="llmhost-base:${DISTRO}"
readonly GATEWAY_PORT="${LLMHOST_LAB_GATEWAY_PORT:-8443}"
readonly SSH_PORT="${LLMHOST_LAB_SSH_PORT:-2222}"
readonly LAB_USER="${LLMHOST_LAB_USER:-llmops}"
readonly EXTRA_PORTS="${LLMHOST_LAB_EXTRA_PORTS:-}"
readonly NETNS="${LLMHOST_LAB_NETNS:-}"
readonly SSHD_PORT="${LLMHOST_LAB_SSHD_PORT:-22}"
readonly BOOT_TIMEOUT="${LLMHOST_LAB_BOOT_TIMEOUT:-90}"
readonly SHM_SIZE="${LLMHOST_LAB_SHM_SIZE:-2g}"
readonly BIND_ADDR=127.0.0.1
readonly LAB_LABEL=llmhost.lab
readonly RUNCONFIG_LABEL=llmhost.runconfig
readonly SSH_DIR=${LAB_SSH_DIR}
readonly SSH_KEY=${LAB_SSH_KEY}
readonly KNOWN_HOSTS="${SSH_DIR}/known_hosts"

usage() {
  sed -n '2,48s/^# \{0,1\}//p' "${LLMHOST_SCRIPTS_DIR}/labhost.sh"
}

# --- validation -------------------------------------------------------------

valid_port() {
  [[ "$1" =~ ^[0-9]{1,5}$ ]] && (($1 >= 1 && $1 <= 65535))
}

PUBLISH_ARGS=()
PUBLISH_DESC=()
build_publish_args() {
  local pair host cont proto
  valid_port "${GATEWAY_PORT}" ||
    die "LLMHOST_LAB_GATEWAY_PORT must be a port number 1-65535 (got: ${GATEWAY_PORT})"
  valid_port "${SSH_PORT}" ||
    die "LLMHOST_LAB_SSH_PORT must be a port number 1-65535 (got: ${SSH_PORT})"
  [[ "${SSH_PORT}" != "${GATEWAY_PORT}" ]] ||
    die "LLMHOST_LAB_SSH_PORT and LLMHOST_LAB_GATEWAY_PORT are both ${SSH_PORT}; give them different ports"
  [[ "${LAB_USER}" =~ ^[a-z_][a-z0-9_-]{0,31}$ && "${LAB_USER}" != root ]] ||
    die "LLMHOST_LAB_USER must be a user name other than root (lower-case letters, digits, _ and -; got: ${LAB_USER})"
  valid_port "${SSHD_PORT}" ||
    die "LLMHOST_LAB_SSHD_PORT must be a port number 1-65535 (got: ${SSHD_PORT})"
  if [[ -n "${NETNS}" ]]; then
    # A shared namespace: its owner publishes every port, this container none.
    [[ "${NETNS}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ && "${NETNS}" != "${NAME}" ]] ||
      die "LLMHOST_LAB_NETNS must name another lab container (got: ${NETNS})"
    [[ "${SSHD_PORT}" != 22 && -z "${EXTRA_PORTS}" ]] ||
      die "a container in ${NETNS}'s network namespace needs its own LLMHOST_LAB_SSHD_PORT (not 22) and publishes nothing (LLMHOST_LAB_EXTRA_PORTS belongs to ${NETNS})"
    PUBLISH_ARGS=(--network "container:${NETNS}")
    PUBLISH_DESC=("${BIND_ADDR}:${SSH_PORT} -> ${SSHD_PORT} (ssh, published by ${NETNS})")
    return 0
  fi
  PUBLISH_ARGS=(-p "${BIND_ADDR}:${GATEWAY_PORT}:443" -p "${BIND_ADDR}:${SSH_PORT}:${SSHD_PORT}")
  PUBLISH_DESC=("${BIND_ADDR}:${GATEWAY_PORT} -> 443 (gateway)" "${BIND_ADDR}:${SSH_PORT} -> ${SSHD_PORT} (ssh)")
  for pair in ${EXTRA_PORTS}; do
    if [[ ! "${pair}" =~ ^([0-9]+):([0-9]+)(/(tcp|udp))?$ ]]; then
      die "LLMHOST_LAB_EXTRA_PORTS entry '${pair}' is not HOST:CONTAINER[/tcp|/udp]; no address may be given, ports are always published on ${BIND_ADDR} only"
    fi
    host=${BASH_REMATCH[1]}
    cont=${BASH_REMATCH[2]}
    proto=${BASH_REMATCH[3]}
    if ! valid_port "${host}" || ! valid_port "${cont}"; then
      die "LLMHOST_LAB_EXTRA_PORTS entry '${pair}': ports must be 1-65535"
    fi
    PUBLISH_ARGS+=(-p "${BIND_ADDR}:${host}:${cont}${proto}")
    PUBLISH_DESC+=("${BIND_ADDR}:${host} -> ${cont}${proto}")
  done
}

# --- docker helpers ---------------------------------------------------------

require_engine() {
  docker_ready || die "the docker engine does not answer; start it with: bash ${LLMHOST_SCRIPTS_DIR}/docker-engine.sh"
}

# container_get FORMAT: inspect the container; fails when it does not exist.
container_get() {
  docker container inspect --format "$1" "${NAME}" 2>/dev/null
}

container_exists() { container_get '{{.Id}}' >/dev/null; }

# Refuse to touch a container of that name that labhost.sh did not create.
require_ours() {
  local ours
  ours="$(container_get "{{ index .Config.Labels \"${LAB_LABEL}\" }}" || true)"
  [[ "${ours}" == 1 ]] ||
    die "a container named ${NAME} exists but was not created by labhost.sh; remove it yourself or set LLMHOST_LAB_NAME"
}

systemd_state() {
  docker exec "${NAME}" systemctl is-system-running 2>/dev/null || true
}

# The run options; kept in one place so that the config hash covers them.
RUN_ARGS=()
build_run_args() {
  build_publish_args
  RUN_ARGS=()
  # docker refuses a host name for a container in another's network namespace.
  [[ -n "${NETNS}" ]] || RUN_ARGS+=(--hostname "${HOSTNAME_IN_LAB}")
  RUN_ARGS+=(
    --cap-add SYS_ADMIN
    # Root on a rented VM holds it; docker's default set does not: the backup unit reads
    # other users' data (Prometheus' TSDB) with this one capability.
    --cap-add DAC_READ_SEARCH
    --security-opt seccomp=unconfined
    --security-opt apparmor=unconfined
    --cgroupns=host
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw
    --tmpfs /run
    --tmpfs /run/lock
    --tmpfs /tmp
    --shm-size "${SHM_SIZE}"
    --stop-signal SIGRTMIN+3
    "${PUBLISH_ARGS[@]}"
  )
}

# The container's run settings and the lab's vault (its ciphertext): a container made with
# another vault (another checkout's lab on this machine, or a vault made anew) holds state
# made with that vault's secrets, the backup repository's password above all, which
# this vault cannot open; it is recreated like one with other ports.
runconfig_hash() {
  {
    printf '%s\n' "${IMAGE}" "${RUN_ARGS[@]}"
    sha256sum <"${ROOT}/inventories/lab/group_vars/all/vault.yml" 2>/dev/null || true
  } | sha256sum | cut -c1-16
}

# Drop a replaced base image once nothing tags or uses it any more.
remove_if_untagged() {
  local tags
  tags="$(docker image inspect --format '{{len .RepoTags}}' "$1" 2>/dev/null || echo gone)"
  if [[ "${tags}" == 0 ]] && docker image rm "$1" >/dev/null 2>&1; then
    log "removed the replaced image ${1:7:12}"
  fi
}

# How to get a shell in this container (with the name when not the default).
shell_hint() {
  if [[ "${NAME}" == llmhost-lab ]]; then
    printf 'bash scripts/labhost.sh shell\n'
  else
    printf 'LLMHOST_LAB_NAME=%s bash scripts/labhost.sh shell\n' "${NAME}"
  fi
}

print_failed_units() {
  log "failed units in ${NAME}:"
  docker exec "${NAME}" systemctl --failed --no-pager >&2 || true
}

# Wait until systemd in the container says "running".
wait_for_systemd() {
  local deadline state="" cstate last_print=-10 waited
  deadline=$((SECONDS + BOOT_TIMEOUT))
  while :; do
    cstate="$(container_get '{{.State.Status}}' || echo gone)"
    if [[ "${cstate}" != running ]]; then
      [[ -t 2 ]] && printf '\n' >&2
      log "last 30 lines of the container's console:"
      docker logs --tail 30 "${NAME}" >&2 2>&1 || true
      die "container ${NAME} is ${cstate} instead of running while systemd was starting"
    fi
    state="$(systemd_state)"
    waited=$((SECONDS - deadline + BOOT_TIMEOUT))
    case "${state}" in
      running)
        [[ -t 2 ]] && printf '\n' >&2
        return 0
        ;;
      degraded)
        [[ -t 2 ]] && printf '\n' >&2
        print_failed_units
        die "systemd in ${NAME} is degraded (see the failed units above; inspect with: $(shell_hint))"
        ;;
      *) ;;
    esac
    if ((SECONDS >= deadline)); then
      [[ -t 2 ]] && printf '\n' >&2
      log "systemd jobs still queued in ${NAME}:"
      docker exec "${NAME}" systemctl list-jobs --no-pager >&2 || true
      die "systemd in ${NAME} did not reach 'running' within ${BOOT_TIMEOUT}s (state: ${state:-no answer})"
    fi
    if [[ -t 2 ]]; then
      printf '\r[llmhost] waiting for systemd in %s: %-12s (%ds/%ds)' \
        "${NAME}" "${state:-booting}" "${waited}" "${BOOT_TIMEOUT}" >&2
    elif ((waited - last_print >= 10)); then
      log "waiting for systemd in ${NAME}: ${state:-booting} (${waited}s/${BOOT_TIMEOUT}s)"
      last_print=${waited}
    fi
    sleep 1
  done
}

create_container() {
  local cfg=$1 err
  log "creating container ${NAME} from ${IMAGE} ..."
  if ! err="$(docker run --detach --name "${NAME}" \
    --label "${LAB_LABEL}=1" --label "${RUNCONFIG_LABEL}=${cfg}" \
    "${RUN_ARGS[@]}" "${IMAGE}" 2>&1 >/dev/null)"; then
    docker rm -f "${NAME}" >/dev/null 2>&1 || true
    printf '%s\n' "${err}" >&2
    if [[ "${err}" == *"address already in use"* || "${err}" == *"port is already allocated"* ]]; then
      die "a published port is taken; choose others with LLMHOST_LAB_GATEWAY_PORT / LLMHOST_LAB_EXTRA_PORTS (${PUBLISH_DESC[*]})"
    fi
    die "docker run failed for ${NAME} (see above)"
  fi
}

# --- the operator account and SSH ----------------------------------------------

# What a provider's cloud-init does on a rented host: the operator account with
# passwordless sudo and the lab key in authorized_keys. The one step that uses
# docker exec; Ansible itself comes in over SSH. Idempotent (files are replaced
# only when their content differs).
provision_operator() {
  local pubkey
  pubkey="$(cat "${SSH_KEY}.pub")" || die "no ${SSH_KEY}.pub (scripts/lab-init.sh makes it)"
  docker exec -i "${NAME}" bash -s -- "${LAB_USER}" "${pubkey}" "${SSHD_PORT}" >/dev/null <<'EOF' ||
set -euo pipefail
user=$1
pubkey=$2
sshd_port=$3
if ! id -u "${user}" >/dev/null 2>&1; then
  useradd --create-home --user-group --shell /bin/bash "${user}"
fi
[[ "$(getent passwd "${user}" | cut -d: -f7)" == /bin/bash ]] || usermod --shell /bin/bash "${user}"
home="$(getent passwd "${user}" | cut -d: -f6)"
group="$(id -gn "${user}")"
[[ -d "${home}" ]] || install -d -m 0750 -o "${user}" -g "${group}" "${home}"
install -d -m 0700 -o "${user}" -g "${group}" "${home}/.ssh"
tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT
# put SRC DEST MODE OWNER GROUP: replace DEST only when its content differs.
put() {
  cmp -s "$1" "$2" || install -m "$3" -o "$4" -g "$5" "$1" "$2"
  chmod "$3" "$2"
  chown "$4:$5" "$2"
}
printf '%s\n' "${pubkey}" >"${tmp}"
put "${tmp}" "${home}/.ssh/authorized_keys" 0600 "${user}" "${group}"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "${user}" >"${tmp}"
visudo -cqf "${tmp}"
put "${tmp}" "/etc/sudoers.d/${user}" 0440 root root
visudo -cq
# sshd's port: its own in a shared network namespace (the drop-in only when not 22).
if [[ "${sshd_port}" == 22 ]]; then
  rm -f /etc/ssh/sshd_config.d/llmhost-lab-port.conf
else
  printf 'Port %s\n' "${sshd_port}" >"${tmp}"
  put "${tmp}" /etc/ssh/sshd_config.d/llmhost-lab-port.conf 0644 root root
fi
# The image installs sshd without starting it at boot (Molecule's test hosts use it too).
systemctl enable ssh.service
if ! systemctl is-active --quiet ssh.service; then
  systemctl start ssh.service
elif [[ "$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2; exit}')" != "${sshd_port}" ]] ||
  ! ss -Htln "sport = :${sshd_port}" | grep -q .; then
  systemctl restart ssh.service
fi
EOF
    die "setting up the operator account ${LAB_USER} in ${NAME} failed"
}

# The first line sshd sends on the published port ("SSH-2.0-..."); empty while
# it does not answer (docker's proxy accepts and closes before sshd listens).
ssh_banner() {
  # shellcheck disable=SC2016 # $1, $2 and ${line} belong to the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 3 line <&3 && printf "%s\n" "${line}"' \
    _ "${BIND_ADDR}" "${SSH_PORT}" 2>/dev/null || true
}

wait_for_sshd() {
  local deadline banner=""
  deadline=$((SECONDS + BOOT_TIMEOUT))
  while :; do
    banner="$(ssh_banner)"
    [[ "${banner}" == SSH-2.0-* ]] && return 0
    if ((SECONDS >= deadline)); then
      docker exec "${NAME}" systemctl status --no-pager ssh.service >&2 || true
      die "sshd in ${NAME} did not answer on ${BIND_ADDR}:${SSH_PORT} within ${BOOT_TIMEOUT}s (see ssh.service above)"
    fi
    sleep 1
  done
}

# Pin the container's host key: replace this address's line in known_hosts
# (a recreated container has a new key; other labs' lines stay).
write_known_hosts() {
  local key host tmp lock
  key="$(docker exec "${NAME}" cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null)" ||
    die "cannot read /etc/ssh/ssh_host_ed25519_key.pub in ${NAME}"
  read -r -a key <<<"${key}"
  [[ "${key[0]:-}" == ssh-ed25519 && "${key[1]:-}" =~ ^[A-Za-z0-9+/]+=*$ ]] ||
    die "unexpected host key in ${NAME}: ${key[*]:0:2}"
  if [[ "${SSH_PORT}" == 22 ]]; then
    host=${BIND_ADDR}
  else
    host="[${BIND_ADDR}]:${SSH_PORT}"
  fi
  install -d -m 0700 "${SSH_DIR}"
  # Several labs start at once (make lab-tests runs two modules side by side): the
  # read-modify-write of the shared file holds a lock, so no lab's line is lost.
  exec {lock}>"${SSH_DIR}/.known_hosts.lock"
  flock "${lock}"
  tmp="$(mktemp "${SSH_DIR}/.known_hosts.XXXXXX")"
  if [[ -f "${KNOWN_HOSTS}" ]]; then
    awk -v h="${host}" '$1 != h' "${KNOWN_HOSTS}" >"${tmp}"
  fi
  printf '%s %s %s\n' "${host}" "${key[0]}" "${key[1]}" >>"${tmp}"
  chmod 0600 "${tmp}"
  mv "${tmp}" "${KNOWN_HOSTS}"
  exec {lock}>&-
}

# --- commands ---------------------------------------------------------------

cmd_up() {
  local start image_id cfg cstate cimage ccfg
  start="$(now_us)"
  build_run_args
  # One lab-init at a time (it creates the key pair and the vault on a first run).
  install -d -m 0700 "${ROOT}/.cache"
  flock "${ROOT}/.cache/.lab-init.lock" env LLMHOST_ROOT="${ROOT}" bash "${LLMHOST_SCRIPTS_DIR}/lab-init.sh"
  if [[ "${LLMHOST_LAB_SKIP_PREPARE:-0}" == 1 ]]; then
    require_engine
  else
    bash "${LLMHOST_SCRIPTS_DIR}/docker-engine.sh" ensure
    bash "${LLMHOST_SCRIPTS_DIR}/base-image.sh" "${DISTRO}"
  fi
  image_id="$(docker image inspect --format '{{.Id}}' "${IMAGE}" 2>/dev/null)" ||
    die "image ${IMAGE} not found; build it with: bash ${LLMHOST_SCRIPTS_DIR}/base-image.sh ${DISTRO}"
  cfg="$(runconfig_hash)"

  if container_exists; then
    require_ours
    cstate="$(container_get '{{.State.Status}}')"
    cimage="$(container_get '{{.Image}}')"
    ccfg="$(container_get "{{ index .Config.Labels \"${RUNCONFIG_LABEL}\" }}" || true)"
    if [[ "${cimage}" != "${image_id}" ]]; then
      log "container ${NAME} runs an outdated image (${cimage:7:12}, current ${IMAGE} is ${image_id:7:12}); recreating it"
      docker rm -f "${NAME}" >/dev/null
      remove_if_untagged "${cimage}"
      create_container "${cfg}"
    elif [[ "${ccfg}" != "${cfg}" ]]; then
      log "container ${NAME} was created with other run settings (ports, or another lab's vault); recreating it"
      docker rm -f "${NAME}" >/dev/null
      create_container "${cfg}"
    else
      case "${cstate}" in
        running) log "container ${NAME} is already running from the current image" ;;
        paused)
          log "container ${NAME} is paused; unpausing it"
          docker unpause "${NAME}" >/dev/null
          ;;
        created | exited)
          log "container ${NAME} is ${cstate}; starting it"
          docker start "${NAME}" >/dev/null || die "docker start ${NAME} failed"
          ;;
        *)
          log "container ${NAME} is ${cstate}; recreating it"
          docker rm -f "${NAME}" >/dev/null
          create_container "${cfg}"
          ;;
      esac
    fi
  else
    create_container "${cfg}"
  fi

  wait_for_systemd
  provision_operator
  wait_for_sshd
  write_known_hosts
  log "lab host ${NAME} is up: systemd running, sshd answering, image ${IMAGE} [$(elapsed_since "${start}")]"
  local d
  for d in "${PUBLISH_DESC[@]}"; do
    log "  published ${d}"
  done
  log "  ssh:   ssh -i ${SSH_KEY} -o UserKnownHostsFile=${KNOWN_HOSTS} -o IdentitiesOnly=yes -p ${SSH_PORT} ${LAB_USER}@${BIND_ADDR}"
  log "  shell: $(shell_hint)"
}

cmd_down() {
  require_engine
  if ! container_exists; then
    log "container ${NAME} is not present; nothing to do"
    return 0
  fi
  require_ours
  log "removing container ${NAME} ..."
  docker rm -f "${NAME}" >/dev/null
  log "container ${NAME} removed"
}

cmd_status() {
  local cstate cimage ctag image_id ports sd
  if ! docker_ready; then
    printf 'engine:    not answering (start it: bash scripts/docker-engine.sh)\n'
    return 1
  fi
  printf 'container: %s\n' "${NAME}"
  if ! container_exists; then
    printf 'state:     absent (create it: bash scripts/labhost.sh up)\n'
    return 0
  fi
  cstate="$(container_get '{{.State.Status}}')"
  cimage="$(container_get '{{.Image}}')"
  # Compare with the tag the container was created from (debian12/debian13).
  ctag="$(container_get '{{.Config.Image}}')"
  image_id="$(docker image inspect --format '{{.Id}}' "${ctag}" 2>/dev/null || true)"
  printf 'state:     %s (started %s)\n' "${cstate}" "$(container_get '{{.State.StartedAt}}')"
  if [[ "${cimage}" == "${image_id}" ]]; then
    printf 'image:     %s (%s, current)\n' "${ctag}" "${cimage:7:12}"
  else
    printf 'image:     %s (OUTDATED: container uses %s; "up" recreates it)\n' "${ctag}" "${cimage:7:12}"
  fi
  ports="$(docker port "${NAME}" 2>/dev/null || true)"
  if [[ -n "${ports}" ]]; then
    printf 'ports:\n'
    printf '%s\n' "${ports}" | sed 's/^/  /'
  else
    printf 'ports:     none published\n'
  fi
  if [[ "${cstate}" == running ]]; then
    sd="$(systemd_state)"
    printf 'systemd:   %s\n' "${sd:-no answer}"
  else
    printf 'systemd:   (container not running)\n'
  fi
}

cmd_shell() {
  local tty_flags=(-i)
  require_engine
  [[ "$(container_get '{{.State.Status}}' || true)" == running ]] ||
    die "container ${NAME} is not running; start it with: bash scripts/labhost.sh up"
  [[ -t 0 && -t 1 ]] && tty_flags=(-it)
  if (($#)); then
    exec docker exec "${tty_flags[@]}" "${NAME}" "$@"
  fi
  exec docker exec "${tty_flags[@]}" "${NAME}" bash -l
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "${cmd}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    shell)
      [[ "${1:-}" == -- ]] && shift
      cmd_shell "$@"
      ;;
    -h | --help | help) usage ;;
    "")
      usage >&2
      exit 2
      ;;
    *)
      usage >&2
      die "unknown command: ${cmd}"
      ;;
  esac
}

main "$@"
