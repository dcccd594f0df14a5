#!/bin/bash
# Start a single-node Slurm cluster on localhost (Debian 12, slurm-wlm 22.05) without systemd,
# for the tests marked `slurm` (`uv run nox -s slurm`). Run as root; needs no TTY. Installs the
# Debian packages when they are missing. Idempotent: when the cluster started by an earlier run is
# still up, it says so and exits 0; when only part of it is up, that part is stopped first.
#
#   SLURM_LOCAL_ACCOUNTING=slurmdbd (default) | none
#       slurmdbd: MariaDB + slurmdbd, so sacct works (submitit and hbm read job states with sacct).
#       none: no database; sacct fails, and a job that dies without a result is never seen as done.
#   SLURM_LOCAL_CPUS      job slots on the node (default: the real CPU count; may exceed it)
#   SLURM_LOCAL_MEM_MB    largest --mem a job may ask for (default: the real memory)
#   SLURM_LOCAL_TIMEOUT=60  seconds to wait for each daemon
#
# PIDs of the daemons this script starts go to /run/slurm-local.pids; stop.sh stops exactly those.
# Logs: /var/log/slurm/{slurmctld,slurmd,slurmdbd,mariadb}.log. Details and pitfalls:
# tools/slurm/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ACCOUNTING="${SLURM_LOCAL_ACCOUNTING:-slurmdbd}"
CPUS="${SLURM_LOCAL_CPUS:-$(nproc)}"
MEM_MB="${SLURM_LOCAL_MEM_MB:-$(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo)}"
TIMEOUT="${SLURM_LOCAL_TIMEOUT:-60}"
PIDS=/run/slurm-local.pids

log() { echo "[slurm-local] $*"; }
die() { echo "[slurm-local] ERROR: $*" >&2; exit 1; }
alive() { # exists and is not a zombie (daemons are children of PID 1, which may reap them late)
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
pid_of() { [ -s "$1" ] && cat "$1" || true; }
wait_for() { # wait_for <what> <command...>
  local what="$1"; shift
  local end=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what not ready after ${TIMEOUT}s (see /var/log/slurm/)"
    sleep 0.2
  done
}
record() { echo "$1 $2" >> "$PIDS"; log "$1 started, pid $2"; }
node_up() { sinfo -h -n localhost -o %t 2>/dev/null | grep -Eqx 'idle|mix|alloc|comp'; }

[ "$(id -u)" -eq 0 ] || die "run as root (the daemons and apt-get need it)"
case "$ACCOUNTING" in slurmdbd|none) ;; *) die "SLURM_LOCAL_ACCOUNTING must be slurmdbd or none, got '$ACCOUNTING'";; esac
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_CPUS must be a positive integer, got '$CPUS'"
[[ "$MEM_MB" =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_MEM_MB must be a positive integer, got '$MEM_MB'"

# 0. already running?
if [ -s "$PIDS" ]; then
  n_alive=0; n_all=0
  while read -r _name pid; do
    n_all=$((n_all + 1)); alive "$pid" && n_alive=$((n_alive + 1))
  done < "$PIDS"
  if [ "$n_alive" -eq "$n_all" ] && node_up; then
    log "already running (pids in $PIDS): $(sinfo -h -o '%P %a %D %t %N')"
    exit 0
  fi
  if [ "$n_alive" -gt 0 ]; then
    log "only $n_alive of $n_all daemons from an earlier start are alive; stopping them first"
    bash "$HERE/stop.sh"
  fi
  rm -f "$PIDS"
fi

# 1. packages (policy-rc.d in Debian images keeps apt from starting services: we start them below)
pkgs=(munge slurmctld slurmd slurm-client tini)
[ "$ACCOUNTING" = slurmdbd ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. configuration
mkdir -p /etc/slurm /var/spool/slurm/ctld /var/spool/slurm/d /var/log/slurm /run/slurm
sed -e "s/@CPUS@/$CPUS/" -e "s/@MEM_MB@/$MEM_MB/" "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf.tmp
if [ "$ACCOUNTING" = none ]; then
  sed -i -e 's|^AccountingStorageType=.*|AccountingStorageType=accounting_storage/none|' \
         -e 's|^JobAcctGatherType=.*|JobAcctGatherType=jobacct_gather/none|' \
         -e '/^AccountingStorageHost=/d' /etc/slurm/slurm.conf.tmp
else
  install -m 600 -o root -g root "$HERE/slurmdbd.conf" /etc/slurm/slurmdbd.conf
fi
mv /etc/slurm/slurm.conf.tmp /etc/slurm/slurm.conf
log "node localhost: CPUs=$CPUS RealMemory=${MEM_MB}MB, partition debug, accounting $ACCOUNTING"

# 3. munge (the key is owned by munge:munge; munged must run as munge)
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running (pid $(pid_of /run/munge/munged.pid)); not started here"
else
  runuser -u munge -- /usr/sbin/munged
  wait_for munged sh -c 'munge -n | unmunge'
  record munged "$(cat /run/munge/munged.pid)"
fi

# 4. MariaDB + slurmdbd (root logs in over the unix socket: no password)
if [ "$ACCOUNTING" = slurmdbd ]; then
  install -d -o mysql -g mysql -m 755 /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --auth-root-authentication-method=socket \
      >>/var/log/slurm/mariadb.log 2>&1
  fi
  if mariadb-admin ping >/dev/null 2>&1; then
    log "mariadbd already running; not started here"
  else
    rm -f /run/mysqld/mysqld.pid
    setsid /usr/sbin/mariadbd --user=mysql </dev/null >>/var/log/slurm/mariadb.log 2>&1 &
    wait_for mariadbd mariadb-admin ping
    wait_for mariadbd-pidfile test -s /run/mysqld/mysqld.pid
    record mariadbd "$(cat /run/mysqld/mysqld.pid)"
  fi
  rm -f /run/slurm/slurmdbd.pid
  slurmdbd
  wait_for slurmdbd bash -c 'echo > /dev/tcp/127.0.0.1/6819'
  wait_for slurmdbd-pidfile test -s /run/slurm/slurmdbd.pid
  record slurmdbd "$(cat /run/slurm/slurmdbd.pid)"
fi

# 5. controller, then the node daemon under "tini -s": a subreaper that reaps at once, because
#    proctrack/pgid waits for every zombie of a job's process group before the job ends.
rm -f /run/slurm/slurmctld.pid
slurmctld
wait_for slurmctld sh -c 'scontrol ping | grep -q UP'
wait_for slurmctld-pidfile test -s /run/slurm/slurmctld.pid
record slurmctld "$(cat /run/slurm/slurmctld.pid)"
rm -f /run/slurm/slurmd.pid
setsid tini -s -- slurmd -D -N localhost </dev/null >/dev/null 2>&1 &
wait_for slurmd test -s /run/slurm/slurmd.pid
slurmd_pid=$(cat /run/slurm/slurmd.pid)
record tini "$(ps -o ppid= -p "$slurmd_pid" | tr -d ' ')"
record slurmd "$slurmd_pid"

# 6. ready = node up (idle, or busy with jobs recovered from saved state) and the cluster known to
#    the accounting database (slurmctld registers it by itself on first start)
wait_for "node localhost" node_up
if [ "$ACCOUNTING" = slurmdbd ]; then
  wait_for "cluster registration" sh -c 'sacctmgr -n -P list cluster format=cluster | grep -qx local'
fi
log "ready: $(sinfo -h -o '%P %a %D %t %N')"
