#!/usr/bin/env bash
# base-image.sh [debian12|debian13] [--force] - build the lab host base image.
#
# Builds the local Docker image llmhost-base:<distro> (debian12 = bookworm,
# debian13 = trixie) with debootstrap, because no registry can be reached:
# systemd as PID 1, python3 + python3-apt for Ansible, and little else.
# The image is labelled llmhost.recipe=<sha256 of the recipe>; when an image
# with that tag and label exists, nothing is done ("base image up to date").
# --force rebuilds anyway. Needs root (debootstrap) and a docker engine
# (started with docker-engine.sh when it does not answer).
#
# Environment:
#   LLMHOST_DEBIAN_MIRROR   Debian mirror URL. Default: the mirror apt already
#                           uses here (/etc/apt/sources.list, then
#                           /etc/apt/sources.list.d/*.sources), else
#                           http://deb.debian.org/debian.
#   LLMHOST_TRUST_HOST_CA   auto|yes|no (default auto). Copy the host's extra CA
#                           certificates (/usr/local/share/ca-certificates/*.crt)
#                           into the image and run update-ca-certificates there.
#                           auto = yes when that folder holds .crt files. Needed
#                           when HTTPS (pip, curl) goes through a TLS-inspecting
#                           egress or corporate proxy: put the proxy's CA there
#                           on the host (and run update-ca-certificates).
#   http_proxy/https_proxy  Used by debootstrap; when unset, apt's
#                           Acquire::http::Proxy is used. Not baked into the image.
#
# Inside the image: units that cannot work in a container (and the apt-daily
# timers) are masked, /etc/machine-id is empty (a fresh id per container),
# sshd as on a rented host (keys only, no root login; started by labhost.sh up, not at
# boot, so Molecule's test hosts of the same image listen on nothing) without baked host
# keys: ssh.service makes them on its first start, so every container has its
# own (scripts/labhost.sh pins them in the lab's known_hosts),
# docs/man pages/translations are left out (dpkg path-exclude, as in the
# debian:*-slim images), apt caches are cleaned
# and /var/lib/apt/lists is emptied and backdated to 2000-01-01 so that
# Ansible's `apt: update_cache: true, cache_valid_time: N` refreshes it on
# the first converge (a fresh mtime on an empty lists dir makes apt skip the
# update and then fail with "No package matching ...").
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SELF="${LLMHOST_SCRIPTS_DIR}/base-image.sh"
readonly SELF
readonly IMAGE_REPO=llmhost-base
readonly RECIPE_LABEL=llmhost.recipe
readonly DEFAULT_MIRROR=http://deb.debian.org/debian
readonly HOST_CA_DIR=/usr/local/share/ca-certificates
readonly PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,curl,sudo,openssh-server
# Units that fail or make no sense in a container (see shared notes lab-host.md).
readonly MASKED_UNITS=(
  systemd-udevd.service
  systemd-udevd-control.socket
  systemd-udevd-kernel.socket
  getty@tty1.service
  systemd-remount-fs.service
  sys-kernel-debug.mount
  sys-kernel-tracing.mount
  dev-hugepages.mount
  # Background apt runs would hold the dpkg lock during a converge.
  apt-daily.timer
  apt-daily-upgrade.timer
)

usage() {
  sed -n '2,38s/^# \{0,1\}//p' "${SELF}"
}

# --- arguments --------------------------------------------------------------

DISTRO=debian12
FORCE=0
for arg in "$@"; do
  case "${arg}" in
    debian12 | debian13) DISTRO=${arg} ;;
    --force | -f) FORCE=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: ${arg} (expected debian12, debian13 or --force)"
      ;;
  esac
done

case "${DISTRO}" in
  debian12) SUITE=bookworm ;;
  debian13) SUITE=trixie ;;
  *) die "unsupported distro: ${DISTRO}" ;;
esac
readonly DISTRO SUITE FORCE
readonly TAG="${IMAGE_REPO}:${DISTRO}"

# --- mirror -----------------------------------------------------------------

# Debian suite names that identify a Debian archive (not -security/-updates,
# not third-party repositories such as cloud-sdk-bookworm).
readonly DEBIAN_SUITES_RE='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$'

# One-line format: deb [options] URI SUITE COMPONENTS...
mirror_from_list() {
  awk -v re="${DEBIAN_SUITES_RE}" '
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      uri = $i; suite = $(i + 1)
      if (suite ~ re && uri ~ /^(https?|ftp):\/\//) { print uri; exit }
    }' "$1"
}

# deb822 format: paragraphs with Types/URIs/Suites/Enabled fields.
mirror_from_sources() {
  awk -v re="${DEBIAN_SUITES_RE}" '
    BEGIN { RS = ""; FS = "\n" }
    {
      types = ""; uris = ""; suites = ""; enabled = "yes"
      for (l = 1; l <= NF; l++) {
        line = $l
        if (line ~ /^[ \t]*#/) continue
        key = tolower(line); sub(/:.*/, "", key)
        val = line; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      if (enabled == "no" || (" " types " ") !~ / deb /) next
      ns = split(suites, s, /[ \t]+/)
      nu = split(uris, u, /[ \t]+/)
      for (j = 1; j <= ns; j++) {
        if (s[j] !~ re) continue
        for (k = 1; k <= nu; k++)
          if (u[k] ~ /^(https?|ftp):\/\//) { print u[k]; exit }
      }
    }' "$1"
}

detect_mirror() {
  local f m=""
  if [[ -n "${LLMHOST_DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "${LLMHOST_DEBIAN_MIRROR%/}"
    return 0
  fi
  if [[ -r /etc/apt/sources.list ]]; then
    m="$(mirror_from_list /etc/apt/sources.list)"
  fi
  if [[ -z "${m}" ]]; then
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [[ -r "${f}" ]] || continue
      if [[ "${f}" == *.sources ]]; then
        m="$(mirror_from_sources "${f}")"
      else
        m="$(mirror_from_list "${f}")"
      fi
      [[ -z "${m}" ]] || break
    done
  fi
  printf '%s\n' "${m:-${DEFAULT_MIRROR}}" | sed 's:/*$::'
}

# --- host CA certificates -----------------------------------------------------

HOST_CA_FILES=()
collect_host_ca() {
  local mode=${LLMHOST_TRUST_HOST_CA:-auto} f
  for f in "${HOST_CA_DIR}"/*.crt "${HOST_CA_DIR}"/*/*.crt; do
    [[ -f "${f}" ]] && HOST_CA_FILES+=("${f}")
  done
  case "${mode}" in
    no) HOST_CA_FILES=() ;;
    auto) ;;
    yes)
      ((${#HOST_CA_FILES[@]})) ||
        die "LLMHOST_TRUST_HOST_CA=yes but ${HOST_CA_DIR} holds no .crt files"
      ;;
    *) die "LLMHOST_TRUST_HOST_CA must be auto, yes or no (got: ${mode})" ;;
  esac
}

# --- recipe hash ------------------------------------------------------------

recipe_hash() {
  local f
  {
    printf 'script\n'
    cat "${SELF}"
    printf '\ndistro=%s\nsuite=%s\nmirror=%s\npackages=%s\n' \
      "${DISTRO}" "${SUITE}" "${MIRROR}" "${PACKAGES}"
    for f in "${HOST_CA_FILES[@]}"; do
      printf 'ca=%s\n' "${f#"${HOST_CA_DIR}"/}"
      cat "${f}"
    done
  } | sha256sum | cut -d' ' -f1
}

image_label() {
  docker image inspect --format "{{ index .Config.Labels \"${RECIPE_LABEL}\" }}" "${TAG}" 2>/dev/null || true
}

# --- build ------------------------------------------------------------------

WORKDIR=""
cleanup() {
  local mnt
  [[ -n "${WORKDIR}" && -d "${WORKDIR}" ]] || return 0
  # debootstrap mounts /proc and /sys inside the target; an interrupted run
  # can leave them mounted. Unmount (deepest first) before deleting anything.
  while read -r mnt; do
    umount -l "${mnt}" 2>/dev/null || true
  done < <(awk -v d="${WORKDIR}/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "${WORKDIR}"
}

# Ctrl-C / TERM: debootstrap runs in its own session (it would ignore the
# terminal's SIGINT and go on for a minute); stop it, then clean up.
on_signal() {
  local pgid="" i
  trap - INT TERM
  printf '\n' >&2
  log "interrupted; stopping debootstrap and removing ${WORKDIR:-the work dir}"
  if [[ -n "${WORKDIR}" && -r "${WORKDIR}/debootstrap.pid" ]]; then
    pgid="$(tr -dc '0-9' <"${WORKDIR}/debootstrap.pid")"
  fi
  if [[ -n "${pgid}" ]] && kill -TERM -- "-${pgid}" 2>/dev/null; then
    for ((i = 0; i < 20; i++)); do
      kill -0 -- "-${pgid}" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-${pgid}" 2>/dev/null || true
  fi
  exit 130
}

# Show debootstrap's stages (not every package) while the full log is kept.
debootstrap_progress() {
  awk '
    /^[WE]: / { print "[llmhost]   debootstrap: " $0; fflush(); next }
    /^I: / {
      # Per-package lines (I: Retrieving adduser 3.134) collapse into one.
      key = ($2 ~ /^(Retrieving|Validating)$/ && NF >= 4) ? "download" : $2
      if (key != last) {
        msg = substr($0, 4)
        if (key == "download") msg = "Retrieving and validating packages ..."
        else if (key == "Extracting") msg = "Extracting packages ..."
        print "[llmhost]   debootstrap: " msg; fflush()
      }
      last = key
    }' >&2
}

ensure_build_tools() {
  local missing=()
  find_cmd debootstrap >/dev/null || missing+=(debootstrap)
  [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  if ((${#missing[@]})); then
    apt_install "building the base image" "${missing[@]}"
  fi
  DEBOOTSTRAP="$(find_cmd debootstrap)" || die "debootstrap not found after installing it"
  if [[ ! -e "/usr/share/debootstrap/scripts/${SUITE}" ]]; then
    die "this debootstrap ($(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || echo unknown)) cannot bootstrap ${SUITE} (${DISTRO}): no /usr/share/debootstrap/scripts/${SUITE}. Install a newer debootstrap (e.g. from ${SUITE} or backports)."
  fi
}

# Use apt's proxy for debootstrap when the environment sets none.
apply_apt_proxy() {
  local p=""
  [[ -z "${http_proxy:-}" ]] || return 0
  have apt-config || return 0
  p="$(apt-config dump --format '%v%n' Acquire::http::Proxy 2>/dev/null | head -n1 || true)"
  if [[ -n "${p}" && "${p}" != DIRECT && "${p}" != false ]]; then
    export http_proxy="${p}"
    log "using apt's HTTP proxy for debootstrap: ${p}"
  fi
}

customize_rootfs() {
  local rootfs=$1 unit f
  # Mask what cannot run in a container.
  for unit in "${MASKED_UNITS[@]}"; do
    ln -sf /dev/null "${rootfs}/etc/systemd/system/${unit}"
  done
  # A fresh machine id per container (systemd fills it in at boot).
  : >"${rootfs}/etc/machine-id"
  if [[ -f "${rootfs}/var/lib/dbus/machine-id" && ! -L "${rootfs}/var/lib/dbus/machine-id" ]]; then
    rm -f "${rootfs}/var/lib/dbus/machine-id"
  fi
  # SSH as on a rented host. The host keys that openssh-server's postinst made
  # would be shared by every container of this image: drop them; ssh.service
  # generates missing ones before Debian's config check (sshd -t needs them).
  rm -f "${rootfs}"/etc/ssh/ssh_host_*
  # Installed, not started at boot: the same image is every Molecule test host, whose
  # checks want nothing but the role under test listening. labhost.sh up enables it on
  # the lab host (as a provider's image does).
  rm -f "${rootfs}/etc/systemd/system/multi-user.target.wants/ssh.service"
  mkdir -p "${rootfs}/etc/systemd/system/ssh.service.d" "${rootfs}/etc/ssh/sshd_config.d"
  cat >"${rootfs}/etc/systemd/system/ssh.service.d/llmhost-host-keys.conf" <<'EOF'
# llmhost lab image: no baked host keys; each container makes its own on first start.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
  cat >"${rootfs}/etc/ssh/sshd_config.d/llmhost.conf" <<'EOF'
# llmhost lab image: keys only, no root login (like a rented host).
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
EOF

  # debootstrap copies the build host's name and resolver; docker provides both.
  printf 'localhost\n' >"${rootfs}/etc/hostname"
  : >"${rootfs}/etc/resolv.conf"

  # Lean, like Debian's -slim images: no docs (except copyright), man pages or
  # translations, now or for packages installed later.
  cat >"${rootfs}/etc/dpkg/dpkg.cfg.d/llmhost-slim" <<'EOF'
# llmhost lab image: keep it lean (like the debian:*-slim images)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "${rootfs}/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "${rootfs}/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "${rootfs}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/groff/* "${rootfs}"/usr/share/info/* \
    "${rootfs}"/usr/share/lintian/* "${rootfs}"/usr/share/linda/*

  if ((${#HOST_CA_FILES[@]})); then
    log "trusting ${#HOST_CA_FILES[@]} host CA certificate(s) from ${HOST_CA_DIR} in the image"
    mkdir -p "${rootfs}${HOST_CA_DIR}"
    for f in "${HOST_CA_FILES[@]}"; do
      install -m 0644 "${f}" "${rootfs}${HOST_CA_DIR}/$(basename "${f}")"
    done
    chroot "${rootfs}" update-ca-certificates >>"${BUILD_LOG}" 2>&1 ||
      die "update-ca-certificates failed in the image (see ${BUILD_LOG})"
  fi

  # Clean apt caches; empty and backdate the package lists (see header).
  chroot "${rootfs}" apt-get clean >>"${BUILD_LOG}" 2>&1 || true
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
    "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/periodic/update-success-stamp \
    "${rootfs}"/var/cache/debconf/*-old "${rootfs}"/var/log/bootstrap.log
  mkdir -p "${rootfs}/var/lib/apt/lists/partial"
  touch -d 2000-01-01 "${rootfs}/var/lib/apt/lists/partial" "${rootfs}/var/lib/apt/lists"
}

build_image() {
  local hash=$1 start rootfs old_id new_id rc
  start="$(now_us)"
  is_root || die "building ${TAG} needs root (debootstrap); run: sudo bash ${SELF} ${DISTRO}"
  ensure_build_tools
  apply_apt_proxy

  mkdir -p /var/tmp
  WORKDIR="$(mktemp -d /var/tmp/llmhost-rootfs.XXXXXX)"
  trap cleanup EXIT
  trap on_signal INT TERM
  rootfs="${WORKDIR}/rootfs"
  BUILD_LOG="/var/log/llmhost-base-${DISTRO}.log"
  : >"${BUILD_LOG}"

  log "debootstrap ${SUITE} from ${MIRROR} into ${rootfs} (log: ${BUILD_LOG}) ..."
  rc=0
  # In the background, so that `wait` (unlike a foreground pipeline) lets the
  # INT/TERM trap run at once; setsid gives debootstrap its own process group.
  (
    # shellcheck disable=SC2016 # $$ and $1 belong to the inner bash
    setsid --wait bash -c 'printf "%s\n" "$$" >"$1" && shift && exec "$@"' _ "${WORKDIR}/debootstrap.pid" \
      "${DEBOOTSTRAP}" --variant=minbase --include="${PACKAGES}" \
      "${SUITE}" "${rootfs}" "${MIRROR}" </dev/null 2>&1 | tee -a "${BUILD_LOG}" | debootstrap_progress
  ) &
  wait "$!" || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    log "last 30 lines of ${BUILD_LOG}:"
    tail -n 30 "${BUILD_LOG}" >&2 || true
    die "debootstrap of ${SUITE} (${DISTRO}) from ${MIRROR} failed (rc=${rc}). Check the mirror (LLMHOST_DEBIAN_MIRROR), that it carries ${SUITE}, and that debootstrap/debian-archive-keyring on this host know ${SUITE}."
  fi
  log "debootstrap done after $(elapsed_since "${start}"); customizing the rootfs ..."
  customize_rootfs "${rootfs}"

  old_id="$(docker image inspect --format '{{.Id}}' "${TAG}" 2>/dev/null || true)"
  log "importing the rootfs as ${TAG} ..."
  tar --numeric-owner -C "${rootfs}" -cf - . |
    docker import \
      -c 'CMD ["/sbin/init"]' \
      -c 'ENV container=docker' \
      -c "LABEL ${RECIPE_LABEL}=${hash} llmhost.distro=${DISTRO} llmhost.suite=${SUITE}" \
      -m "llmhost base image ${DISTRO} (${SUITE}) from ${MIRROR}" \
      - "${TAG}" >/dev/null ||
    die "docker import of ${TAG} failed"
  new_id="$(docker image inspect --format '{{.Id}}' "${TAG}")"
  # Drop the image this one replaces, unless something still uses it.
  if [[ -n "${old_id}" && "${old_id}" != "${new_id}" ]]; then
    docker image rm "${old_id}" >/dev/null 2>&1 || log "previous image ${old_id:7:12} kept (still in use)"
  fi
  log "built ${TAG} ($(docker image inspect --format '{{.Size}}' "${TAG}" | awk '{ printf "%d MB", $1 / 1000000 }'), ${RECIPE_LABEL}=${hash:0:12}...) in $(elapsed_since "${start}")"
}

main() {
  local start hash current
  start="$(now_us)"
  MIRROR="$(detect_mirror)"
  collect_host_ca
  hash="$(recipe_hash)"

  if ! docker_ready; then
    bash "${LLMHOST_SCRIPTS_DIR}/docker-engine.sh" ensure
  fi
  one_at_a_time "base-image-${DISTRO}"
  current="$(image_label)"
  if [[ "${FORCE}" -eq 0 && "${current}" == "${hash}" ]]; then
    log "base image up to date: ${TAG} (${RECIPE_LABEL}=${hash:0:12}...) [$(elapsed_since "${start}")]"
    return 0
  fi
  if [[ "${FORCE}" -eq 1 ]]; then
    log "rebuilding ${TAG} (--force)"
  elif [[ -n "${current}" ]]; then
    log "${TAG} is outdated (recipe changed: ${current:0:12}... -> ${hash:0:12}...); rebuilding"
  elif docker image inspect "${TAG}" >/dev/null 2>&1; then
    log "${TAG} exists but has no ${RECIPE_LABEL} label; rebuilding"
  else
    log "${TAG} not found; building it (about a minute)"
  fi
  build_image "${hash}"
}

main
