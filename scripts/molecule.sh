#!/usr/bin/env bash
# Run the Molecule scenario of each role named, JOBS at a time (make molecule; JOBS=1 by
# default for one role, 2 for all). Every scenario has its own container name and its own
# published loopback port, so two can run at once; with JOBS>1 each scenario's output goes
# to .cache/molecule/<role>.log and is printed whole when it fails. The exit status is
# non-zero when any scenario failed; a table of durations ends the run.
#   scripts/molecule.sh ROLE...
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-1}
logs="${root}/.cache/molecule"
mkdir -p "${logs}"
[ "$#" -gt 0 ] || { echo "usage: scripts/molecule.sh ROLE..." >&2; exit 2; }
for r in "$@"; do
  [ -f "${root}/roles/${r}/molecule/default/molecule.yml" ] \
    || { echo "[llmhost] no molecule scenario for role '${r}'" >&2; exit 2; }
done

one() {  # one scenario; writes its duration and result to ${logs}/<role>.result
  local r=$1 start rc
  start=$(date +%s)
  if [ "${jobs}" -gt 1 ]; then
    (cd "${root}/roles/${r}" && LLMHOST_ROLE="${r}" molecule -c "${root}/molecule/base.yml" test) \
      >"${logs}/${r}.log" 2>&1
  else
    (cd "${root}/roles/${r}" && LLMHOST_ROLE="${r}" molecule -c "${root}/molecule/base.yml" test)
  fi
  rc=$?
  echo "$(( $(date +%s) - start )) ${rc}" >"${logs}/${r}.result"
  if [ "${rc}" -eq 0 ]; then
    echo "[llmhost] molecule ${r} passed in $(( $(date +%s) - start )) s"
  else
    if [ "${jobs}" -gt 1 ]; then
      echo "[llmhost] molecule ${r} FAILED (${rc}); its whole output (${logs}/${r}.log):"
      sed "s/^/  [${r}] /" "${logs}/${r}.log"
    fi
    echo "[llmhost] molecule ${r} FAILED (${rc}) after $(( $(date +%s) - start )) s"
  fi
}

for r in "$@"; do rm -f "${logs}/${r}.result"; done
running=0
for r in "$@"; do
  if [ "${running}" -ge "${jobs}" ]; then wait -n; running=$((running - 1)); fi
  echo "[llmhost] molecule test: ${r}"
  one "${r}" &
  running=$((running + 1))
done
wait

status=0
echo "[llmhost] molecule scenarios (${jobs} at a time)"
printf '  %-20s %8s  %s\n' "role" "seconds" "result"
for r in "$@"; do
  read -r secs rc <"${logs}/${r}.result" || { secs="?"; rc=1; }
  if [ "${rc}" -eq 0 ]; then res="passed"; else res="FAILED (${rc})"; status=1; fi
  printf '  %-20s %8s  %s\n' "${r}" "${secs}" "${res}"
done
exit "${status}"
