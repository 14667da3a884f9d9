#!/usr/bin/env bash
# Run Molecule scenarios, JOBS at a time (make molecule: 2 for all, 1 for ROLE=x).
#   scripts/molecule.sh ROLE[:DISTRO]...      (DISTRO: debian12, the default, or debian13)
# Each run gets its own container name, Molecule folder and pair of ports on 127.0.0.1
# (the container's 443 and 8000; molecule/base.yml), derived from this checkout and the
# run's place in the list, so runs, and two worktrees on one machine, go side by side.
# With JOBS>1 each run's output goes to .cache/molecule/<role>-<distro>.log and is printed
# whole when it fails. Exit status: non-zero when any run failed. A table of durations
# ends the run, then, for each failed run, where it failed in a few lines (the task that
# ended its play, pytest's failures, Molecule's errors), so the end of a CI log says why.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-1}
logs="${root}/.cache/molecule"
[ "$#" -gt 0 ] || { echo "usage: scripts/molecule.sh ROLE[:DISTRO]..." >&2; exit 2; }
for run in "$@"; do
  r=${run%%:*}
  [ -f "${root}/roles/${r}/molecule/default/molecule.yml" ] \
    || { echo "[llmhost] no molecule scenario for role '${r}'" >&2; exit 2; }
done
mkdir -p "${logs}"
checkout=$(printf '%s' "${root}" | cksum | cut -c1-5)
# 20000-27999, 40 ports per checkout (20 runs): other checkouts rarely share the block.
base=$(( 20000 + $(printf '%s' "${root}" | cksum | cut -d' ' -f1) % 200 * 40 ))

one() {  # one run (ROLE:DISTRO); writes "<seconds> <rc>" to ${logs}/<role>-<distro>.result
  local run=$1 port=$2 r d name start rc
  r=${run%%:*}
  d=${run#*:}
  name="${r}-${d}"
  start=$(date +%s)
  echo "[llmhost] molecule test: ${r} on ${d} (127.0.0.1:${port} -> 443, :$((port + 1)) -> 8000)"
  (
    cd "${root}/roles/${r}" || exit 2
    export LLMHOST_ROLE="${r}" LLMHOST_DISTRO="${d}" LLMHOST_MOL_CHECKOUT="${checkout}" \
      LLMHOST_MOL_HTTPS_PORT="${port}" LLMHOST_MOL_HTTP_PORT="$((port + 1))" \
      MOLECULE_EPHEMERAL_DIRECTORY="${HOME}/.ansible/tmp/llmhost-mol-${checkout}-${name}"
    # The run's base image first (built once, whichever run or lane asks first; a
    # Debian 13 image is built only when a Debian 13 run comes, beside the others).
    run() { bash "${root}/scripts/base-image.sh" "${d}" && molecule -c "${root}/molecule/base.yml" test; }
    if [ "${jobs}" -gt 1 ]; then run >"${logs}/${name}.log" 2>&1; else run; fi
  )
  rc=$?
  echo "$(( $(date +%s) - start )) ${rc}" >"${logs}/${name}.result"
  if [ "${rc}" -eq 0 ]; then
    echo "[llmhost] molecule ${r} on ${d} passed in $(( $(date +%s) - start )) s"
  else
    if [ "${jobs}" -gt 1 ]; then
      echo "[llmhost] molecule ${r} on ${d} FAILED (${rc}); its whole output:"
      sed "s/^/  [${name}] /" "${logs}/${name}.log"
    fi
    echo "[llmhost] molecule ${r} on ${d} FAILED (${rc}) after $(( $(date +%s) - start )) s"
  fi
}

why_failed() {  # why_failed LOG: the lines of a Molecule log that say where the run failed
  # A fatal or failed block counts when the recap follows it, not another task (those
  # were rescued or ignored); retries are not failures, nor Ansible's "Task failed" lines.
  # At most 12 lines of 200 characters; the caller prints the log's last lines when none
  # of these are in it.
  LC_ALL=C awk '
    { gsub(/\033\[[0-9;]*m/, ""); sub(/^ *\342\224\202 ?/, ""); line = substr($0, 1, 200) }
    / [a-z_]+: Executing/ { s = $0; sub(/: Executing.*/, "", s); sub(/.* /, "", s); phase = s }
    /^TASK \[/ { task = line; n = 0; next }
    /^(fatal|failed): \[/ { n = 1; block[1] = line; next }
    n > 0 && n < 8 && /^ / { block[++n] = line; next }
    /^(NO MORE HOSTS LEFT|PLAY RECAP)/ && n > 0 {
      if (out < 12) { print "    [" phase "] " task; out++ }
      for (i = 1; i <= n && out < 12; i++) { print "      " block[i]; out++ }
      n = 0; next
    }
    /Idempotence test failed/ { idem = 1 }
    idem && /^\* \[/ && out < 12 { print "      " line; out++; next }
    /\[ERROR\]: Task failed|return code was/ { next }  # the fatal block, Molecule'"'"'s echo
    /^FAILED [^ ]+::|^E   |(CRITICAL|ERROR) |\[ERROR\]:/ && out < 12 && !seen[line]++ {
      print "    [" phase "] " line; out++
    }
  ' "$1"
}

# Every run as ROLE:DISTRO once (a bare ROLE runs on debian12).
runs=()
for run in "$@"; do
  [[ "${run}" == *:* ]] || run="${run}:debian12"
  runs+=("${run}")
  rm -f "${logs}/${run%%:*}-${run#*:}.result"
done
running=0
i=0
for run in "${runs[@]}"; do
  if [ "${running}" -ge "${jobs}" ]; then wait -n; running=$((running - 1)); fi
  one "${run}" "$((base + 2 * i))" &
  running=$((running + 1))
  i=$((i + 1))
done
wait

status=0
echo "[llmhost] molecule runs (${jobs} at a time)"
printf '  %-28s %8s  %s\n' "role-distro" "seconds" "result"
for run in "${runs[@]}"; do
  name="${run%%:*}-${run#*:}"
  if read -r secs rc <"${logs}/${name}.result" 2>/dev/null; then :; else secs="?"; rc=1; fi
  if [ "${rc}" -eq 0 ]; then res="passed"; else res="FAILED (${rc})"; status=1; fi
  printf '  %-28s %8s  %s\n' "${name}" "${secs}" "${res}"
done
for run in "${runs[@]}"; do  # with JOBS=1 the output came as it was written: nothing to add
  name="${run%%:*}-${run#*:}"
  [ "${jobs}" -gt 1 ] || break
  read -r _ rc <"${logs}/${name}.result" 2>/dev/null && [ "${rc}" -eq 0 ] && continue
  echo "[llmhost] where ${name} failed (its whole output is above and in .cache/molecule/${name}.log):"
  why=$(why_failed "${logs}/${name}.log")
  if [ -n "${why}" ]; then echo "${why}"; else tail -n 5 "${logs}/${name}.log" | cut -c1-200; fi
done
exit "${status}"
