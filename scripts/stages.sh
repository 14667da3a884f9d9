#!/usr/bin/env bash
# Run make stages in order, time each, and print a table at the end (also when a stage
# fails: the table says which, and the exit status is that stage's).
# Usage: scripts/stages.sh STAGE... (each a make target); MAKE_ARGS are passed on.
set -uo pipefail
declare -a names=() seconds=() results=()
status=0
start_all=$(date +%s)
for stage in "$@"; do
  start=$(date +%s)
  if [ "${status}" -eq 0 ]; then
    echo "[llmhost] stage: ${stage}"
    # shellcheck disable=SC2086  # MAKE_ARGS is a list of words on purpose
    make --no-print-directory "${stage}" ${MAKE_ARGS:-}
    rc=$?
    if [ "${rc}" -eq 0 ]; then results+=("ok"); else results+=("FAILED (${rc})"); status=${rc}; fi
  else
    results+=("not run")
  fi
  names+=("${stage}")
  seconds+=("$(( $(date +%s) - start ))")
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
