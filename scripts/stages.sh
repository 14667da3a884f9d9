#!/usr/bin/env bash
# Run make stages in order, time each, and print a table at the end (also when a stage
# fails: the table says which, the failed stage's last lines follow it, and the exit
# status is that stage's).
# Usage: scripts/stages.sh STAGE... (each a make target); MAKE_ARGS are passed on.
# A STAGE written a+b runs the targets a and b side by side (stages that wait on
# containers and playbooks leave a core idle that the other one uses); each of their
# output lines is prefixed with its name, and the group's row in the table is its wall
# time. A side written a,b is a lane: b starts when a has passed (a failed a leaves b not
# run), while the other sides go on. A failure in a group lets its other sides finish,
# and stops the later stages. STAGES_NICE names stages (space-separated) that run at a
# lower CPU priority (nice 10): beside them, the others get the cores first.
set -uo pipefail
declare -a names=() seconds=() results=()
failed=()
status=0
start_all=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT

run_one() {  # run_one STAGE: make STAGE; its status in ${tmp}/STAGE.rc, its seconds in .s
  local stage=$1 start rc
  start=$(date +%s)
  local -a prio=()
  if [[ " ${STAGES_NICE:-} " == *" ${stage} "* ]]; then prio=(nice -n 10); fi
  # shellcheck disable=SC2086  # MAKE_ARGS is a list of words on purpose
  "${prio[@]}" make --no-print-directory "${stage}" ${MAKE_ARGS:-}
  rc=$?
  echo "${rc}" >"${tmp}/${stage}.rc"
  echo "$(( $(date +%s) - start ))" >"${tmp}/${stage}.s"
  return "${rc}"
}

record() {  # record NAME SECONDS RC
  names+=("$1")
  seconds+=("$2")
  if [ "$3" -eq 0 ]; then results+=("ok"); else results+=("FAILED ($3)"); fi
}

for group in "$@"; do
  IFS=+ read -r -a sides <<<"${group}"
  IFS=+, read -r -a members <<<"${group}"
  if [ "${status}" -ne 0 ]; then
    for stage in "${members[@]}"; do names+=("${stage}"); seconds+=(0); results+=("not run"); done
    continue
  fi
  start=$(date +%s)
  label=${group//+/ beside }
  echo "[llmhost] stage: ${label//,/ then }"
  if [ "${#members[@]}" -eq 1 ]; then
    run_one "${members[0]}" 2>&1 | tee "${tmp}/${members[0]}.out"
  else
    for side in "${sides[@]}"; do
      IFS=, read -r -a lane <<<"${side}"
      (
        for stage in "${lane[@]}"; do
          # Each line as it comes, prefixed (sed -u, and Python unbuffered: into a pipe,
          # pytest would otherwise hold its progress lines until it ends).
          ( PYTHONUNBUFFERED=1 run_one "${stage}" 2>&1 | sed -u "s/^/[${stage}] /" \
            | tee "${tmp}/${stage}.out" )
          [ "$(cat "${tmp}/${stage}.rc" 2>/dev/null || echo 1)" -eq 0 ] || break
        done
      ) &
    done
    wait
  fi
  for stage in "${members[@]}"; do
    if [ ! -f "${tmp}/${stage}.rc" ]; then  # after a failed stage in its lane
      names+=("${stage}"); seconds+=(0); results+=("not run")
      continue
    fi
    rc=$(cat "${tmp}/${stage}.rc")
    record "${stage}" "$(cat "${tmp}/${stage}.s" 2>/dev/null || echo 0)" "${rc}"
    [ "${rc}" -eq 0 ] || failed+=("${stage}")
    if [ "${rc}" -ne 0 ] && [ "${status}" -eq 0 ]; then status=${rc}; fi
  done
  if [ "${#members[@]}" -gt 1 ]; then
    names+=("${group}")
    seconds+=("$(( $(date +%s) - start ))")
    results+=("(side by side: the group's wall time)")
  fi
done
total=$(( $(date +%s) - start_all ))
echo
echo "[llmhost] stage timings"
printf '  %-20s %8s  %s\n' "stage" "seconds" "result"
for i in "${!names[@]}"; do
  printf '  %-20s %8s  %s\n' "${names[$i]}" "${seconds[$i]}" "${results[$i]}"
done
printf '  %-20s %8s\n' "total" "${total}"
# A failed stage's last lines once more, last: beside other stages they scrolled away,
# and the end of a log is what a CI page shows first.
for stage in "${failed[@]}"; do
  echo
  echo "[llmhost] ${stage} failed; the last lines it printed:"
  tail -n 16 "${tmp}/${stage}.out" 2>/dev/null | cut -c1-200
done
# Last of all, the failed tests by name: pytest's summary lines (FAILED/ERROR path::test -
# reason), the Molecule runs that failed and their verifiers' assertion lines. With two stages failed, their excerpts above
# can fill the part of a log that a CI page shows; this block is what stays in view.
if [ "${#failed[@]}" -gt 0 ]; then
  named=$(for stage in "${failed[@]}"; do
    grep -E '(^|\] )(FAILED|ERROR) [^ ]+::|\[llmhost\] where [^ ]+ failed|molecule .* FAILED \(|\[verify\] E  ' \
      "${tmp}/${stage}.out" 2>/dev/null
  done | awk '!seen[$0]++' | head -n 12 | cut -c1-240)
  if [ -n "${named}" ]; then
    echo
    echo "[llmhost] what failed, by name:"
    echo "${named}"
  fi
fi
exit "${status}"
