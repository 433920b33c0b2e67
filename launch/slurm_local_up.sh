#!/bin/bash
# Starts a one-node SLURM cluster on this machine, for tests of the SLURM
# executor (tests/launch_slurm_test.py). Needs root and the Debian packages
# slurm-wlm and munge; no systemd, no cgroups, no accounting database.
#
#   eval "$(launch/slurm_local_up.sh)"      # starts it, exports SLURM_CONF
#   launch/slurm_local_up.sh --down          # stops it
#
# Everything (config, munge key and socket, spool, logs, pid files) lives in
# $SLURM_LOCAL_DIR (default ${TMPDIR:-/tmp}/rnnlm-slurm). The only output on
# stdout is the export line; progress and errors go to stderr.
set -euo pipefail

dir=${SLURM_LOCAL_DIR:-${TMPDIR:-/tmp}/rnnlm-slurm}

stop() {
  for name in slurmd slurmctld munged; do
    if [[ -f "$dir/$name.pid" ]]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
}

if [[ "${1:-}" == "--down" ]]; then
  stop
  echo "stopped the cluster in $dir" >&2
  exit 0
fi

for tool in munged slurmctld slurmd sbatch sinfo; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool not found (apt-get install -y slurm-wlm munge)" >&2
    exit 1
  }
done

stop
mkdir -p "$dir"/{munge,spool/ctld,spool/d,log}
chmod 700 "$dir" "$dir/munge"
if [[ ! -f "$dir/munge/munge.key" ]]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
fi
munged --force \
  --key-file="$dir/munge/munge.key" \
  --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munge.seed"

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
cat >"$dir/slurm.conf" <<EOF
ClusterName=rnnlm-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Up when the node takes jobs.
for _ in $(seq 60); do
  state=$(sinfo --noheader --format=%T 2>/dev/null | head -1 || true)
  if [[ "$state" == idle* || "$state" == mixed* || "$state" == alloc* ]]; then
    echo "slurm up in $dir (node $host: $state)" >&2
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "error: the node did not come up; see $dir/log/" >&2
tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
