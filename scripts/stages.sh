#!/usr/bin/env bash
# Run make stages in order, time each, and print a table at the end (also when a stage
# fails: the table says which, and the exit status is that stage's).
# Usage: scripts/stages.sh STAGE... (each a make target); MAKE_ARGS are passed on.
# A STAGE written A+B runs the targets A and B side by side (make test: the lab tests and
# Molecule, whose containers and ports are their own): each line they print is prefixed
# with its target's name, each gets its own row in the table, and the group fails when
# one of them fails (the other still runs to its end).
set -uo pipefail
declare -a names=() seconds=() results=()
status=0
start_all=$(date +%s)
results_dir=$(mktemp -d)
trap 'rm -rf "${results_dir}"' EXIT

one() {  # one target, its output prefixed; writes "<seconds> <rc>" to ${results_dir}/<target>
  local target=$1 start rc
  start=$(date +%s)
  # shellcheck disable=SC2086  # MAKE_ARGS is a list of words on purpose
  make --no-print-directory "${target}" ${MAKE_ARGS:-} 2>&1 | sed -u "s/^/[${target}] /"
  rc=${PIPESTATUS[0]}
  echo "$(( $(date +%s) - start )) ${rc}" >"${results_dir}/${target}"
}

for stage in "$@"; do
  IFS=+ read -r -a group <<<"${stage}"
  if [ "${status}" -ne 0 ]; then
    for target in "${group[@]}"; do names+=("${target}"); seconds+=(0); results+=("not run"); done
    continue
  fi
  if [ "${#group[@]}" -eq 1 ]; then
    start=$(date +%s)
    echo "[llmhost] stage: ${stage}"
    # shellcheck disable=SC2086  # MAKE_ARGS is a list of words on purpose
    make --no-print-directory "${stage}" ${MAKE_ARGS:-}
    rc=$?
    echo "$(( $(date +%s) - start )) ${rc}" >"${results_dir}/${stage}"
  else
    echo "[llmhost] stages side by side: ${group[*]}"
    for target in "${group[@]}"; do one "${target}" & done
    wait
  fi
  for target in "${group[@]}"; do
    read -r secs rc <"${results_dir}/${target}" 2>/dev/null || { secs=0; rc=1; }
    names+=("${target}")
    seconds+=("${secs}")
    if [ "${rc}" -eq 0 ]; then results+=("ok"); else results+=("FAILED (${rc})"); status=${rc}; fi
  done
done
total=$(( $(date +%s) - start_all ))
echo
echo "[llmhost] stage timings"
printf '  %-16s %8s  %s\n' "stage" "seconds" "result"
for i in "${!names[@]}"; do
  printf '  %-16s %8s  %s\n' "${names[$i]}" "${seconds[$i]}" "${results[$i]}"
done
printf '  %-16s %8s\n' "total" "${total}"
exit "${status}"
