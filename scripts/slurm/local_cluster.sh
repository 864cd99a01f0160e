#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the `slurm` tests and for trying the SLURM
# launcher without a cluster.
#
#   scripts/slurm/local_cluster.sh up DIR     # then: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm/local_cluster.sh down DIR
#
# `up` installs Debian's slurm-wlm and munge when they are missing (root), writes a config
# for this node under DIR (free ports, state and logs in DIR), starts munged (unless one
# already answers), slurmctld and slurmd in the foreground of their own sessions, and waits
# until the node is idle. `down` stops exactly the daemons `up` started, by the pids in
# DIR/pids, and nothing else.
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
pids="$dir/pids"

fail() { echo "local_cluster.sh: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [[ $(id -u) -eq 0 ]] || fail "slurm-wlm and munge are not installed, and installing them needs root (apt-get)"
    command -v apt-get >/dev/null || fail "slurm-wlm and munge are not installed, and there is no apt-get to install them"
    echo "installing slurm-wlm and munge (Debian packages)"
    local try
    for try in 1 2 3; do  # a mirror that hiccups once should not fail the run
        apt-get update -qq >"$dir/apt.log" 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >>"$dir/apt.log" 2>&1 \
            && return
        sleep $((try * 5))
    done
    tail -5 "$dir/apt.log" >&2
    fail "apt-get could not install slurm-wlm and munge (3 tries; log: $dir/apt.log)"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# starts "$@" in its own session, in the foreground (no daemonising, so $! is the daemon)
start() {
    local name=$1; shift
    setsid "$@" >"$dir/$name.out" 2>&1 </dev/null &
    echo "$name $!" >>"$pids"
}

munge_answers() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

write_config() {
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p "$dir/state" "$dir/spool"
    # CR_CPU_Memory: every CPU is a slot, so 2 one-CPU jobs run at once on 2 cores;
    # DefMemPerCPU keeps a job without --mem from taking the whole node.
    cat >"$dir/slurm.conf" <<EOF
ClusterName=softpool-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$(( memory / cpus ))
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MinJobAge=30
KillWait=10
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

alive() { [[ -s $pids ]] && while read -r _ pid; do kill -0 "$pid" 2>/dev/null && return 0; done <"$pids"; return 1; }

up() {
    alive && fail "$dir already holds a running cluster (pids in $pids); run: $0 down $dir"
    rm -f "$pids"  # left by a cluster whose daemons are all gone
    install_packages
    : >"$pids"
    if ! munge_answers; then
        [[ $(id -u) -eq 0 ]] || fail "munged is not running, and starting it needs root"
        install -d -o munge -g munge -m 0755 /run/munge
        [[ -s /etc/munge/munge.key ]] || fail "/etc/munge/munge.key is missing (reinstall munge)"
        start munged setpriv --reuid munge --regid munge --clear-groups munged --foreground
        for _ in $(seq 50); do munge_answers && break; sleep 0.2; done
        munge_answers || { cat "$dir/munged.out" >&2; fail "munged did not start"; }
    fi
    write_config
    export SLURM_CONF="$dir/slurm.conf"
    start slurmctld slurmctld -D -f "$SLURM_CONF"
    start slurmd slurmd -D -f "$SLURM_CONF"
    for _ in $(seq 100); do
        state=$(sinfo -h -o %t 2>/dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.3
    done
    if [[ $state != idle ]]; then
        tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir"/*.out >&2 2>/dev/null || true
        down
        fail "the node did not become idle within 30 s (sinfo: '${state:-no answer}'); logs in $dir"
    fi
    echo "SLURM is up: export SLURM_CONF=$SLURM_CONF"
}

down() {
    [[ -f $pids ]] || { echo "nothing to stop in $dir"; return 0; }
    # jobs first: their step daemons (slurmstepd) would outlive slurmd otherwise
    if alive && [[ -f $dir/slurm.conf ]]; then
        export SLURM_CONF="$dir/slurm.conf"
        jobs=$(squeue --noheader --format %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 60); do [[ -z $(squeue --noheader --format %A 2>/dev/null) ]] && break; sleep 0.5; done
        fi
    fi
    # reverse order: slurmd, slurmctld, then munged (if this script started it)
    tac "$pids" | while read -r name pid; do
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        echo "stopped $name ($pid)"
    done
    rm -f "$pids"
}

case $action in
    up) up ;;
    down) down ;;
    *) usage ;;
esac
