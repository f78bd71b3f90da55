#!/usr/bin/env bash
# slurm-down.sh [RECORD] - stop only the daemons that slurm-up.sh started, using the
# pid files it recorded in /run/smk-slurm/started, or only those listed in RECORD
# (the file a `RECORD=FILE slurm-up.sh` run wrote). Safe to rerun.
# PURGE_STATE=1 also wipes job/node state (/var/spool/slurmctld, /var/spool/slurmd).
set -uo pipefail
GLOBAL=/run/smk-slurm/started
STARTED=${1:-$GLOBAL}
log() { printf '[slurm-down %s] %s\n' "$(date +%T)" "$*"; }
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$pid/stat" 2>/dev/null
}
if [ ! -s "$STARTED" ]; then log "nothing recorded in $STARTED - nothing to stop"; exit 0; fi

rc=0
# stop in dependency order: slurmd, slurmctld, slurmdbd, mariadbd, munged
for comm in slurmd slurmctld slurmdbd mariadbd munged; do
  while read -r pf c; do
    [ "$c" = "$comm" ] || continue
    if alive "$pf" "$c"; then
      pid=$(cat "$pf")
      kill "$pid" && log "sent TERM to $c (pid $pid)"
      for _ in $(seq 1 150); do alive "$pf" "$c" || break; sleep 0.1; done
      if alive "$pf" "$c"; then log "WARNING: $c (pid $pid) still running after 15s"; rc=1; continue; fi
      log "$c stopped"
      rm -f "$pf"   # slurmctld/slurmdbd leave root-dir pid files behind; a stale
                    # /run/slurmctld.pid makes 'apt-get remove slurmctld' fail (prerm runs scancel)
    else
      log "$c not running (pid file $pf)"
    fi
    sed -i "\#^$pf $c\$#d" "$STARTED"
    [ "$STARTED" = "$GLOBAL" ] || sed -i "\#^$pf $c\$#d" "$GLOBAL" 2>/dev/null
  done <"$STARTED"
done
[ "${PURGE_STATE:-0}" = 1 ] && rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* && log "state purged"
exit $rc
