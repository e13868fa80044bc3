#!/usr/bin/env bash
# make slurm-test: the Slurm executor tested for real on this machine.
#
# Starts a one-node Slurm cluster from Debian's slurm-wlm and munge — munged,
# slurmctld and slurmd, each with its files in one scratch directory, its own
# munge key and socket, its own ports, SLURM_CONF pointing at its slurm.conf
# (nothing under /etc is touched) — then runs the integration test
# cmd/vbbench TestSlurmArray: a simulator study submitted by `vbbench slurm`
# as a job array of 4 tasks (no GRES), one of which fails until it is fixed
# and is then submitted again with --resume; `vbbench status` and `vbbench
# report` gather the results. The daemons are stopped (by the PIDs they
# wrote) and the scratch directory removed on exit, also on failure.
#
# Needs root (the test cluster runs everything as root) and the packages:
# apt-get install slurm-wlm munge; SLURM_INSTALL=1 installs them when
# missing (after checking apt-cache policy slurm-wlm), as .ci/run does.
# Bounded by TIMEOUT seconds (default 600). KEEP=1 keeps the scratch
# directory.
set -euo pipefail
cd "$(dirname "$0")/.."
TIMEOUT=${TIMEOUT:-600}

if [ "${SLURM_INSTALL:-}" = 1 ] && ! command -v slurmctld >/dev/null; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "slurm-test: SLURM_INSTALL=1 needs root and apt-get to install slurm-wlm and munge" >&2
		exit 1
	fi
	if ! apt-cache policy slurm-wlm | grep -q 'Candidate: [0-9]'; then
		apt-get update -qq
	fi
	apt-cache policy slurm-wlm | sed -n 1,3p
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
for p in munged munge unmunge slurmctld slurmd sbatch squeue sinfo; do
	if ! command -v "$p" >/dev/null; then
		echo "slurm-test: $p not found; install the packages: apt-get install slurm-wlm munge" >&2
		exit 1
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "slurm-test: needs root (the test cluster runs slurmctld, slurmd and the tasks as root)" >&2
	exit 1
fi

D=$(mktemp -d /tmp/vbslurm.XXXXXX)
chmod 755 "$D"
mkdir -p "$D"/{spool,state,log}
cleanup() {
	local rc=$?
	for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munged.pid"; do
		if [ -s "$f" ]; then
			pid=$(cat "$f")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	if [ "$rc" != 0 ]; then
		echo "slurm-test: failed (exit $rc); daemon logs:" >&2
		tail -n 30 "$D"/log/*.log "$D"/munged.log 2>/dev/null >&2 || true
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "slurm-test: kept $D" >&2; else rm -rf "$D"; fi
	exit "$rc"
}
trap cleanup EXIT

# munge, with a key and socket of its own.
dd if=/dev/urandom of="$D/munge.key" bs=1024 count=1 status=none
chmod 400 "$D/munge.key"
munged --force --key-file="$D/munge.key" --socket="$D/munge.sock" --pid-file="$D/munged.pid" \
	--log-file="$D/munged.log" --seed-file="$D/munged.seed"
munge --socket="$D/munge.sock" -n | unmunge --socket="$D/munge.sock" >/dev/null

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
H=$(hostname -s)
cat >"$D/slurm.conf" <<EOF
ClusterName=vbtest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$(freeport)
SlurmdPort=$(freeport)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
ReturnToService=2
MinJobAge=600
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$D/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Wait (bounded) for the node to come up idle.
for i in $(seq 1 120); do
	state=$(sinfo -h -o %t 2>/dev/null || true)
	[ "$state" = idle ] && break
	if [ "$i" = 120 ]; then
		echo "slurm-test: the node did not come up idle (sinfo: '$state')" >&2
		exit 1
	fi
	sleep 0.5
done
echo "slurm-test: one-node cluster up ($(sinfo -h -o '%P %D %t %c CPUs'))"

VBENCH_SLURM=1 timeout "$TIMEOUT" go test -count=1 -timeout "$((TIMEOUT - 10))s" -run 'TestSlurmArray' -v ./cmd/vbbench/
