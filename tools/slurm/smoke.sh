#!/bin/bash
# Smoke test for the cluster started by tools/slurm/start.sh: srun, sbatch, a 4-task array,
# scancel, and (when accounting is on) sacct. Takes about 10 s.
# SMOKE_TIMEOUT_TEST=1 also checks that --time=1 ends as TIMEOUT (about 90 s more).
set -euo pipefail
D=$(mktemp -d -t slurm-smoke.XXXXXX)
cd "$D"
ok() { echo "[smoke] ok: $*"; }
fail() { echo "[smoke] FAIL: $*" >&2; exit 1; }
wait_gone() { # wait_gone <jobid> <seconds>
  local end=$((SECONDS + $2))
  while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; do
    [ $SECONDS -lt $end ] || fail "job $1 still in queue after $2 s"
    sleep 0.2
  done
}
acct_on() { [ "$(scontrol show config | awk -F= '/^AccountingStorageType/{gsub(/ /,"",$2);print $2}')" = accounting_storage/slurmdbd ]; }
state_of() { # final state from sacct, waiting for slurmdbd to catch up
  local s=""
  for _ in $(seq 1 50); do
    s=$(sacct -n -X -P -o State -j "$1" 2>/dev/null | head -1 | awk '{print $1}')
    case "$s" in ""|PENDING|RUNNING|COMPLETING|REQUEUED) sleep 0.2;; *) break;; esac
  done
  echo "$s"
}

sinfo -h -n localhost -o %t | grep -Eqx "idle|mix" || fail "node not up: $(sinfo -h -o "%t")"
ok "sinfo: node idle"

[ -n "$(srun -t 1 hostname)" ] || fail "srun hostname"
ok "srun hostname"

J=$(sbatch --parsable -t 1 -o "$D/single.out" --wrap 'echo hello from $SLURM_JOB_ID')
wait_gone "$J" 30
grep -q "hello from $J" single.out || fail "sbatch output"
ok "sbatch job $J"

A=$(sbatch --parsable -t 1 --array=0-3 -o "$D/arr-%a.out" --wrap 'echo task $SLURM_ARRAY_TASK_ID')
wait_gone "$A" 30
for i in 0 1 2 3; do grep -q "task $i" "arr-$i.out" || fail "array task $i"; done
ok "array job $A (4 tasks)"

C=$(sbatch --parsable -t 5 -o /dev/null --wrap 'sleep 300')
sleep 1; scancel "$C"; wait_gone "$C" 30
ok "scancel $C"

if acct_on; then
  [ "$(state_of "$J")" = COMPLETED ] || fail "sacct state of $J: $(state_of "$J")"
  [ "$(state_of "$C")" = CANCELLED ] || fail "sacct state of $C: $(state_of "$C")"
  ok "sacct: $J COMPLETED, $C CANCELLED"
else
  echo "[smoke] skip: sacct (accounting_storage/none)"
fi

if [ "${SMOKE_TIMEOUT_TEST:-0}" = 1 ]; then
  T=$(sbatch --parsable -t 1 -o /dev/null --wrap 'sleep 300')
  wait_gone "$T" 150
  if acct_on; then
    [ "$(state_of "$T")" = TIMEOUT ] || fail "sacct state of $T: $(state_of "$T")"
  fi
  ok "time limit: job $T ended as TIMEOUT"
fi
rm -rf "$D"
echo "[smoke] all passed"
