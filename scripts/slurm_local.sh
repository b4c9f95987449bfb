#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, to try depth_lightning's SLURM path (hydra/launcher=slurm)
# on one machine and to test it in CI. Debian/Ubuntu, as root, no systemd needed.
#
#   bash scripts/slurm_local.sh start    install what is missing, configure, start, smoke-test (idempotent)
#   bash scripts/slurm_local.sh status   daemons and sinfo
#   bash scripts/slurm_local.sh stop     stop every daemon this script started (by pidfile)
#
# Accounting (slurmdbd + MariaDB) is on: submitit asks sacct for the state of a job, and without it a
# job that dies before writing its result leaves the sweep waiting for ever.
# Knobs: SLURM_LOCAL_PARTITION (debug), SLURM_LOCAL_CLUSTER (local), SLURM_LOCAL_WAIT (60 s).
set -euo pipefail

PARTITION=${SLURM_LOCAL_PARTITION:-debug}
CLUSTER=${SLURM_LOCAL_CLUSTER:-local}
WAIT=${SLURM_LOCAL_WAIT:-60}
CONF=/etc/slurm/slurm.conf
DBDCONF=/etc/slurm/slurmdbd.conf
LOGS=/var/log/slurm
STATE=/var/lib/slurm
PACKAGES="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
# daemon:pidfile, in start order
DAEMONS="munged:/run/munge/munged.pid mariadbd:/run/mysqld/mysqld.pid slurmdbd:/run/slurmdbd.pid slurmctld:/run/slurmctld.pid slurmd:/run/slurmd.pid"

say() { echo "[slurm_local] $*"; }
die() { say "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"

pidfile_of() { for d in $DAEMONS; do [ "${d%%:*}" = "$1" ] && echo "${d#*:}"; done; }
running() {  # name -> pid if the pidfile names a live process of that name
  local f pid; f=$(pidfile_of "$1")
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 < "$f"); [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ] && echo "$pid"
}
wait_until() {  # what, command...
  local what=$1; shift
  for _ in $(seq $((WAIT * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what not ready after ${WAIT}s (logs in $LOGS)"
}

install_packages() {
  local missing="" p
  for p in $PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
  [ -z "$missing" ] && return
  say "installing:$missing"
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep package scripts from starting daemons: we start them
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

configure() {
  local node hw acct_pw
  node=$(hostname -s)
  # Lightning and torch.distributed resolve the node name of the allocation: it must resolve.
  getent hosts "$node" >/dev/null || echo "127.0.0.1 $node" >> /etc/hosts
  mkdir -p "$LOGS" "$STATE/slurmctld" "$STATE/slurmd" /run/munge /run/mysqld /var/log/mysql /etc/slurm
  chown slurm:slurm "$LOGS" "$STATE" "$STATE/slurmctld"
  chown munge:munge /run/munge; chown mysql:mysql /run/mysqld /var/log/mysql
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  hw=$(slurmd -C | head -n1 | sed 's/^NodeName=[^ ]* //')
  cat > "$CONF.new" <<CONF
# written by depth_lightning scripts/slurm_local.sh: one node on localhost, no cgroups
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$CONF.new" "$CONF" 2>/dev/null; then
    mv "$CONF.new" "$CONF"; CONF_CHANGED=1
  else
    rm -f "$CONF.new"
  fi
  acct_pw=$(sed -n 's/^StoragePass=//p' "$DBDCONF" 2>/dev/null || true)
  [ -n "$acct_pw" ] || acct_pw=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
  # slurmdbd refuses a config that is not mode 600 and owned by SlurmUser
  cat > "$DBDCONF.new" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$acct_pw
CONF
  install -m 600 -o slurm -g slurm "$DBDCONF.new" "$DBDCONF"; rm -f "$DBDCONF.new"
  ACCT_PW=$acct_pw
}

start_daemons() {
  if [ "${CONF_CHANGED:-0}" = 1 ]; then stop_one slurmd; stop_one slurmctld; fi
  running munged >/dev/null || runuser -u munge -- /usr/sbin/munged || runuser -u munge -- /usr/sbin/munged --force
  wait_until munge sh -c 'munge -n | unmunge'
  if ! running mariadbd >/dev/null; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --innodb-lock-wait-timeout=900 \
      </dev/null >>/var/log/mysql/mariadbd.log 2>&1 &
    wait_until mariadb mariadb-admin ping
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$ACCT_PW';
              ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$ACCT_PW';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  running slurmdbd >/dev/null || /usr/sbin/slurmdbd
  wait_until slurmdbd sacctmgr -n list cluster
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  running slurmctld >/dev/null || /usr/sbin/slurmctld
  wait_until slurmctld sh -c 'scontrol ping | grep -q UP'
  running slurmd >/dev/null || /usr/sbin/slurmd
  local node; node=$(hostname -s)
  for _ in $(seq $((WAIT * 2))); do
    case "$(sinfo -h -n "$node" -o %t 2>/dev/null)" in
      idle*|mix*|alloc*) break ;;
      down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  sinfo -h -n "$node" -o %t | grep -qE '^(idle|mix|alloc)' || die "node $node is $(sinfo -h -n "$node" -o %t)"
}

smoke_test() {
  local jid state=""
  (cd /tmp && timeout 60 srun -N1 -n1 -t 1 true) || die "srun failed"
  jid=$(cd /tmp && sbatch --parsable -t 1 -o /dev/null --wrap true)
  for _ in $(seq 120); do
    state=$(sacct -n -X -P -j "$jid" -o State 2>/dev/null | head -n1)
    case "$state" in COMPLETED|FAILED*|CANCELLED*|TIMEOUT) break ;; esac
    sleep 0.5
  done
  [ "$state" = COMPLETED ] || die "smoke job $jid ended as '$state'"
}

stop_one() {
  local pid
  pid=$(running "$1") || { rm -f "$(pidfile_of "$1")"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do [ -d /proc/"$pid" ] || break; sleep 0.25; done
  if [ -d /proc/"$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$(pidfile_of "$1")"
}

case "${1:-start}" in
  start)
    t0=$(date +%s)
    install_packages; configure; start_daemons; smoke_test
    say "up in $(( $(date +%s) - t0 )) s: cluster '$CLUSTER', partition '$PARTITION', node $(hostname -s); stop with: bash $0 stop" ;;
  status)
    for d in $DAEMONS; do n=${d%%:*}; if p=$(running "$n"); then say "$n running (pid $p)"; else say "$n stopped"; fi; done
    sinfo 2>/dev/null || true ;;
  stop)
    if running slurmctld >/dev/null; then squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true; fi
    for n in slurmd slurmctld slurmdbd mariadbd munged; do stop_one "$n"; done
    say "stopped" ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
