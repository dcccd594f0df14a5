#!/bin/bash
# Stop the daemons that start.sh started, by the PIDs it recorded in /run/slurm-local.pids (never
# by name), in reverse start order: TERM, then KILL after 15 s. Jobs still in the queue are
# cancelled first so that no job process outlives the cluster. Safe to run when nothing runs.
#   SLURM_LOCAL_KEEP_JOBS=1   do not cancel jobs (the next start.sh recovers them from saved state)
set -uo pipefail
PIDS=/run/slurm-local.pids
log() { echo "[slurm-local] $*"; }
alive() { # exists and is not a zombie (a zombie has already exited; PID 1 may reap it late)
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

[ -s "$PIDS" ] || { log "nothing to stop ($PIDS missing)"; exit 0; }

ctld_pid=$(awk '$1=="slurmctld"{print $2}' "$PIDS")
if [ "${SLURM_LOCAL_KEEP_JOBS:-0}" != 1 ] && alive "$ctld_pid"; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 100); do
      [ -z "$(squeue -h -t R,CG -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

tac "$PIDS" | while read -r name pid; do
  if ! alive "$pid"; then log "$name (pid $pid) already gone"; continue; fi
  t0=$SECONDS
  kill -TERM "$pid"
  for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "$name (pid $pid) stopped after $((SECONDS - t0)) s"
done
rm -f "$PIDS"
