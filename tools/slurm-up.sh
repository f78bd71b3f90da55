#!/usr/bin/env bash
# slurm-up.sh - single-node SLURM cluster on localhost (Debian 12, run as root).
# Installs munge + slurmctld + slurmd + slurm-client (+ optionally slurmdbd and
# MariaDB so that `sacct` works), writes a minimal config without cgroups, starts
# the daemons in the background and waits until the node is idle.
# Idempotent: rerunning it starts only what is not running and restarts
# slurmctld/slurmd only if the generated config changed.
# Daemons it starts are recorded in /run/smk-slurm/started (read by slurm-down.sh).
# Adapted for contrastlab from the shared recipe: the defaults match profiles/slurm
# (partition "main", account "contrastlab", accounting on so that the plugin's default
# `sacct` status check works as on a real cluster, 2 fake GPUs); RECORD and
# RESTART_RUNNING let a test stop exactly what it started and nothing else.
#
# Knobs (environment variables):
#   CLUSTER_NAME=contrastlab  PARTITION=main  FAKE_GPUS=2 (0 = no gpu gres)
#   WITH_DBD=1  (slurmdbd + MariaDB, so sacct and accounts work; 0 = none)
#   DB_PASS=slurmdbpass  ACCOUNT=contrastlab  WAIT_S=90
#   RECORD=FILE          also append "PIDFILE COMM" of each daemon THIS run starts to FILE
#                        (give FILE to slurm-down.sh to stop only those)
#   RESTART_RUNNING=1    0 = if the config changed while daemons this run did not start are
#                        running, fail instead of restarting them
set -euo pipefail

CLUSTER_NAME=${CLUSTER_NAME:-contrastlab}
PARTITION=${PARTITION:-main}
FAKE_GPUS=${FAKE_GPUS:-2}
WITH_DBD=${WITH_DBD:-1}
DB_PASS=${DB_PASS:-slurmdbpass}
ACCOUNT=${ACCOUNT:-contrastlab}
WAIT_S=${WAIT_S:-90}
RECORD=${RECORD:-}
RESTART_RUNNING=${RESTART_RUNNING:-1}
NODE=localhost
STATE_DIR=/run/smk-slurm
STARTED=$STATE_DIR/started
CONF_DIR=/etc/slurm
T_START=$(date +%s.%N)

log() { printf '[slurm-up %s] %s\n' "$(date +%T)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
[ "$(id -u)" = 0 ] || die "must run as root"

# alive PIDFILE COMM: true if the pid in PIDFILE is a live (non-zombie) COMM process
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$pid/stat" 2>/dev/null
}
record() {
  mkdir -p "$STATE_DIR"
  grep -qxF "$1 $2" "$STARTED" 2>/dev/null || echo "$1 $2" >>"$STARTED"
  if [ -n "$RECORD" ]; then grep -qxF "$1 $2" "$RECORD" 2>/dev/null || echo "$1 $2" >>"$RECORD"; fi
}
stop_pidfile() { # PIDFILE COMM (used only to restart after a config change)
  alive "$1" "$2" || return 0
  kill "$(cat "$1")"
  for _ in $(seq 1 100); do alive "$1" "$2" || return 0; sleep 0.1; done
  die "$2 (pid $(cat "$1")) did not stop"
}
wait_for() { # SECONDS DESCRIPTION CMD...
  local n=$1 what=$2; shift 2
  local end=$((SECONDS + n))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${n}s waiting for $what"
    sleep 0.25
  done
}
# write_conf DEST MODE OWNER:GROUP  (content on stdin); sets CONF_CHANGED=1 if it changed
CONF_CHANGED=0
write_conf() {
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 0; fi
  install -m "$2" -o "${3%:*}" -g "${3#*:}" "$tmp" "$1"; rm -f "$tmp"
  CONF_CHANGED=1; log "wrote $1"
}

# ---------------------------------------------------------------- 1. packages
PKGS="munge slurmctld slurmd slurm-client"
[ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # postinst scripts try invoke-rc.d; without systemd that is refused/harmless
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  log "packages installed ($(elapsed))"
fi

# ---------------------------------------------------------------- 2. munge
install -d -o munge -g munge -m 0755 /run/munge
for d in /etc/munge /var/log/munge; do [ -d "$d" ] || install -d -o munge -g munge -m 0700 "$d"; done
[ -d /var/lib/munge ] || install -d -o munge -g munge -m 0711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0600 /etc/munge/munge.key
if ! alive /run/munge/munged.pid munged; then
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged alive /run/munge/munged.pid munged
  record /run/munge/munged.pid munged
  log "munged started"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed (see /var/log/munge/munged.log)"

# ---------------------------------------------------------------- 3. config
# Hardware as slurmd sees it (works before slurm.conf exists).
eval "$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=')"
MEM=$((RealMemory * 90 / 100))   # leave headroom, otherwise the node registers as INVAL
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd "$STATE_DIR"

GRES_NODE="" GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  # gres/gpu drops "file-less" GPUs, so each fake GPU gets a char device (a /dev/null clone)
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    [ -c "$STATE_DIR/fakegpu$i" ] || mknod -m 0666 "$STATE_DIR/fakegpu$i" c 1 3
  done
  GRES_TYPES="GresTypes=gpu"
  GRES_NODE="Gres=gpu:$FAKE_GPUS"
  if [ "$FAKE_GPUS" = 1 ]; then files="$STATE_DIR/fakegpu0"; else files="$STATE_DIR/fakegpu[0-$((FAKE_GPUS - 1))]"; fi
  write_conf $CONF_DIR/gres.conf 0644 root:root <<EOF
# generated by slurm-up.sh: fake GPUs (no devices behind them)
AutoDetect=off
NodeName=$NODE Name=gpu File=$files
EOF
else
  rm -f $CONF_DIR/gres.conf
fi

if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi

write_conf $CONF_DIR/slurm.conf 0644 root:root <<EOF
# generated by slurm-up.sh - single node, no cgroups
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
$ACCT
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# completed jobs stay visible to squeue for 5 min (snakemake slurm plugin's squeue mode needs >= 3*poll interval)
MinJobAge=300
$GRES_TYPES
NodeName=$NODE CPUs=$CPUs Boards=$Boards SocketsPerBoard=$SocketsPerBoard CoresPerSocket=$CoresPerSocket ThreadsPerCore=$ThreadsPerCore RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# ---------------------------------------------------------------- 4. optional accounting
if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g root -m 0755 /run/mysqld
  if ! alive /run/mysqld/mysqld.pid mariadbd; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 \
      --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
      >>/var/log/slurm/mariadbd.log 2>&1 </dev/null &
    wait_for 60 mariadb mariadb -e 'select 1'
    record /run/mysqld/mysqld.pid mariadbd
    log "mariadbd started ($(elapsed))"
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
              ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  write_conf $CONF_DIR/slurmdbd.conf 0600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
  if ! alive /run/slurmdbd.pid slurmdbd; then
    /usr/sbin/slurmdbd
    record /run/slurmdbd.pid slurmdbd
  fi
  wait_for 60 "slurmdbd (sacctmgr)" sacctmgr -n list cluster
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER_NAME" || sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
  sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" || sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci >/dev/null
  for u in root ${SUDO_USER:-}; do
    sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user | grep -qx "$u" ||
      sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
  done
  log "slurmdbd ready, account '$ACCOUNT' ($(elapsed))"
fi

# ---------------------------------------------------------------- 5. slurmctld + slurmd
if [ "$CONF_CHANGED" = 1 ]; then   # new config: restart running daemons so all agree
  if [ "$RESTART_RUNNING" = 0 ] && { alive /run/slurmd.pid slurmd || alive /run/slurmctld.pid slurmctld; }; then
    die "a SLURM cluster with another configuration is already running; not restarting it (RESTART_RUNNING=0). Stop it first (tools/slurm-down.sh) or rerun with the same knobs"
  fi
  stop_pidfile /run/slurmd.pid slurmd
  stop_pidfile /run/slurmctld.pid slurmctld
fi
if ! alive /run/slurmctld.pid slurmctld; then
  /usr/sbin/slurmctld
  wait_for 30 slurmctld alive /run/slurmctld.pid slurmctld
  record /run/slurmctld.pid slurmctld
  log "slurmctld started"
fi
if ! alive /run/slurmd.pid slurmd; then
  # -N: the node is called "localhost" whatever the container hostname is
  /usr/sbin/slurmd -N $NODE
  wait_for 30 slurmd alive /run/slurmd.pid slurmd
  record /run/slurmd.pid slurmd
  log "slurmd started"
fi

# ---------------------------------------------------------------- 6. wait for idle
end=$((SECONDS + WAIT_S))
while :; do
  st=$(sinfo -h -N -n $NODE -o %T 2>/dev/null || true)
  case "$st" in
    idle | mixed | allocated | completing) break ;;
    drain* | down | down\* | drained\*) # stale DRAIN/DOWN kept in StateSaveLocation
      scontrol update nodename=$NODE state=resume >/dev/null 2>&1 || true ;;
  esac
  ((SECONDS < end)) || die "node state '${st:-?}' after ${WAIT_S}s; see /var/log/slurm/slurm{ctld,d}.log and: scontrol show node $NODE"
  sleep 0.25
done
log "node $NODE is $st ($(elapsed) since start)"
sinfo -N -o '%N %P %T %c %m %G'
srun -N1 -n1 -t 1 true || die "srun smoke test failed"
log "srun OK - cluster ready"
