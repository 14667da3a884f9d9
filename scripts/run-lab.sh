#!/usr/bin/env bash
# The main job on the lab host: runs playbooks/lab.yml against inventories/lab
# and prints where the evidence bundle is. Called by `make lab` after the venv
# and the lab container are up. Extra arguments go to ansible-playbook.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[llmhost] %s\n' "$*"; }

sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo nogit)
export LLMHOST_RUN_ID=${LLMHOST_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-$sha}
bundle="$root/evidence/lab/$LLMHOST_RUN_ID"
[ -e "$bundle" ] && { echo "[llmhost] error: $bundle exists; evidence is never overwritten (unset LLMHOST_RUN_ID)" >&2; exit 1; }
mkdir -p "$bundle"
export LLMHOST_EVIDENCE_DIR="$bundle"
export ANSIBLE_LOG_PATH="$bundle/ansible.log"

log "run $LLMHOST_RUN_ID: playbooks/lab.yml on the lab host"
start=$(date +%s)
"$root/.venv/bin/ansible-playbook" -i inventories/lab playbooks/lab.yml "$@"
log "lab finished in $(( $(date +%s) - start )) s"
log "evidence bundle: evidence/lab/$LLMHOST_RUN_ID"
(cd "$bundle" && find . -type f | sort | sed 's/^\.\//  /')

# No key may leak: scan the bundle and the lab host's logs (journal, nginx) for every
# secret of the run (.cache/secrets/*, plain and encoded). A leak fails `make lab`.
log "secrets scan: the bundle and the lab host's logs"
hostlogs=$(mktemp -d)
trap 'rm -rf "$hostlogs"' EXIT
lab=${LLMHOST_LAB_NAME:-llmhost-lab}
docker exec "$lab" journalctl --no-pager -o cat > "$hostlogs/journal.txt"
docker exec "$lab" sh -c 'cat /var/log/nginx/*.log 2>/dev/null || true' > "$hostlogs/nginx.txt"
"$root/.venv/bin/python" scripts/evidence_secrets.py "$bundle" "$hostlogs"
log "verify the bundle any time: make verify-evidence RUN=evidence/lab/$LLMHOST_RUN_ID"
