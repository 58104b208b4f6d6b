#!/usr/bin/env bash
# End-to-end test of profiles/slurm on a real SLURM: a private one-node cluster on localhost.
#
#   bash tests/workflow/slurm/run_slurm_test.sh          (as root; pytest: TSMETA_SLURM_TEST=1 pytest -m slurm)
#
#  1. installs Debian's slurm-wlm and munge with apt-get if their programs are missing;
#  2. writes a private cluster under a temp dir: its own munge key and socket, a slurm.conf with
#     its own ports and no slurmdbd (SLURM_CONF points to it, and so does a link
#     /etc/slurm/slurm.conf for as long as the test runs; it skips if that file exists already);
#  3. starts munged (as user munge), slurmctld and slurmd and waits until the node is idle;
#  4. runs config/slurm_test.yaml with --workflow-profile profiles/slurm and --config
#     max_runtime=3 (plus the overrides a local test needs: no account, squeue status, fast
#     polling) in one temp dir: a tiny run through every stage, and beside it a run that the
#     cost model splits into two jobs (simulate_segment, then simulate resuming from its state);
#  5. checks SLURM's job completion log (jobcomp/filetxt): every job of the rules tasks,
#     simulate_segment, simulate, theory, compare, figure_data and figure ran as a SLURM job, is
#     listed there as COMPLETED and had a time limit of at most 3 minutes; the second job of the
#     split run resumed from the first one's state;
#  6. runs the same config locally (no max_runtime: the split run is one job) in a second temp
#     dir, beside step 4, and checks the outputs are the same: every netCDF file equal (data,
#     coordinates, attributes except timings), figures present;
#  7. stops exactly the daemons it started (trap on EXIT), also on failure or Ctrl-C.
#
# Exit status: 0 pass, 1 fail, 77 skip ("SKIP: ..." when SLURM cannot be installed or started).
# Environment: TSMETA_SLURM_PORT     first port to try for slurmctld (default 16817; slurmd +1)
#              TSMETA_SLURM_KEEP=1   keep the temp dir (it is always kept on failure)
#              PYTHON                Python with xarray (default: python3)
# shellcheck disable=SC2317  # cleanup and the functions it calls run from the EXIT trap
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CONFIG=$REPO/config/slurm_test.yaml
MAX_RUNTIME=3  # minutes per SLURM job
PYTHON=${PYTHON:-python3}
EXPECTED_RULES="tasks simulate_segment simulate theory compare figure_data figure"
export PATH="$PATH:/usr/sbin:/sbin"
T0=$SECONDS

STATE="" SLURM_CONF="" ETC_LINK=""
MUNGED_PID="" CTLD_PID="" SLURMD_PID="" CHILD_PID="" LOCAL_PID=""

say() { printf '[slurm-test %3ds] %s\n' $((SECONDS - T0)) "$*"; }
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

show_logs() {
    local f
    for f in "$STATE"/log/*.log; do
        [[ -s $f ]] || continue
        echo "----- last lines of $f"
        tail -n 25 "$f"
    done
}

stop_pid() {  # stop_pid NAME PID [SIGNAL [SECONDS]]: SIGNAL (TERM), KILL after SECONDS (10)
    local name=$1 pid=$2 signal=${3:-TERM} seconds=${4:-10} i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -"$signal" "$pid" 2>/dev/null
    for ((i = 0; i < seconds * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) did not stop on $signal within ${seconds}s; killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    say "stopped $name (pid $pid)"
}

run_logged() {  # run_logged LOG CMD...: at most 15 min; in the background, so a signal reaches the trap
    local log=$1 deadline=$((SECONDS + 900)) rc
    shift
    "$@" >"$log" 2>&1 &
    CHILD_PID=$!
    while kill -0 "$CHILD_PID" 2>/dev/null; do
        if ((SECONDS > deadline)); then
            say "$1 still running after 15 min: stopping it"
            stop_pid "$1" "$CHILD_PID" TERM 5
            CHILD_PID=""
            return 124
        fi
        sleep 1
    done
    wait "$CHILD_PID"
    rc=$?
    CHILD_PID=""
    return "$rc"
}

stop_job_leftovers() {  # processes of our SLURM jobs that outlived their job (proctrack/linuxproc
    # loses track of some): exactly those of a SLURM job whose working directory is our work dir
    local proc pid cwd
    [[ -n $STATE && -d $STATE/work ]] || return 0
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
        [[ $cwd == "$STATE/work"/* ]] || continue
        tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -q '^SLURM_JOB_ID=' || continue
        stop_pid "job process $(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | cut -c1-60)" "$pid" TERM 3
    done
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    # interrupted: stop Snakemake (on SIGTERM it would wait for its jobs, so it gets 5 s), then
    # cancel what is left of its SLURM jobs while the daemons are still up
    stop_pid snakemake "$CHILD_PID" TERM 5
    stop_pid "local snakemake" "$LOCAL_PID" TERM 5
    if [[ -n $CTLD_PID ]] && kill -0 "$CTLD_PID" 2>/dev/null; then
        squeue -h -t PD,R,S,CG -o %i 2>/dev/null | xargs -r scancel 2>/dev/null
        for ((i = 0; i < 75; i++)); do
            [[ -z $(squeue -h -t PD,R,S,CG -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    stop_job_leftovers
    # remove /etc/slurm/slurm.conf only if it is still the link this script made
    if [[ -n $ETC_LINK && -L $ETC_LINK && $(readlink "$ETC_LINK") == "$SLURM_CONF" ]]; then
        rm -f "$ETC_LINK"
    fi
    if [[ -n $STATE && -d $STATE ]]; then
        if [[ $rc -eq 1 ]]; then
            show_logs
            echo "kept for inspection: $STATE"
        elif [[ ${TSMETA_SLURM_KEEP:-0} == 1 ]]; then
            echo "kept: $STATE"
        else
            rm -rf "$STATE"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- 1. SLURM and munge installed? -----------------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (it installs packages and starts munged, slurmctld and slurmd)"
command -v snakemake >/dev/null || fail "snakemake is not on PATH"
"$PYTHON" -c "import xarray" 2>/dev/null || fail "$PYTHON cannot import xarray"

have_all() {
    local b
    for b in munged mungekey munge slurmctld slurmd sbatch srun squeue sinfo scontrol scancel; do
        command -v "$b" >/dev/null || return 1
    done
}
if ! have_all; then
    command -v apt-get >/dev/null || skip "SLURM/munge missing and no apt-get to install them"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }
    if ! apt_install; then
        apt-get update -qq >/dev/null 2>&1
        apt_install || skip "apt-get could not install slurm-wlm and munge"
    fi
    have_all || skip "slurm-wlm and munge installed, but their programs are not on PATH"
fi
id munge >/dev/null 2>&1 || skip "there is no 'munge' user to run munged as"
say "$(slurmctld -V 2>&1), $(munged --version 2>&1 | head -n 1)"

# --- 2. a private one-node cluster -------------------------------------------------------------
STATE=$(mktemp -d /tmp/tsmeta-slurm.XXXXXX) || fail "mktemp failed"
chmod 755 "$STATE"
mkdir -p "$STATE"/{munge,ctld,spool,log,work}
chown munge:munge "$STATE/munge" && chmod 755 "$STATE/munge"  # munged: socket dir must be o+x
SOCKET=$STATE/munge/munge.socket
JOBCOMP=$STATE/log/jobcomp.txt
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
# rules ask for up to 4000 MB; memory is not enforced here (no cgroups), only checked by sbatch
((MEM_MB < 8192)) && MEM_MB=8192

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${TSMETA_SLURM_PORT:-16817}
for ((i = 0; i < 20; i++)); do
    port_free "$PORT" && port_free $((PORT + 1)) && break
    PORT=$((PORT + 10))
done
if ! port_free "$PORT" || ! port_free $((PORT + 1)); then
    skip "no free port pair for slurmctld/slurmd"
fi

# SLURM commands read $SLURM_CONF, but the plugin's job step (snakemake-executor-plugin-slurm-jobstep
# 0.6) drops every SLURM_* variable except the job's ids before it calls srun inside the job, so
# srun only finds the default /etc/slurm/slurm.conf: link that to ours (removed again on exit) and
# never touch a machine that already has a SLURM configured.
ETC_CONF=/etc/slurm/slurm.conf
if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == /tmp/tsmeta-slurm.*/slurm.conf ]]; then
    # left by a run of this script that was killed: stale unless that run's slurmctld still lives
    if ! pgrep -f -- "slurmctld -D -i -f $(readlink "$ETC_CONF")" >/dev/null; then
        say "removing the stale $ETC_CONF -> $(readlink "$ETC_CONF") of an earlier run"
        rm -f "$ETC_CONF"
    fi
fi
if [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
    skip "$ETC_CONF exists: this machine has a SLURM of its own (or another run of this test)"
fi
export SLURM_CONF=$STATE/slurm.conf
if ! mkdir -p /etc/slurm || ! ln -s "$SLURM_CONF" "$ETC_CONF"; then
    skip "cannot link $ETC_CONF to $SLURM_CONF"
fi
ETC_LINK=$ETC_CONF
cat >"$SLURM_CONF" <<EOF
# one-node test cluster written by tests/workflow/slurm/run_slurm_test.sh
ClusterName=tsmetatest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups in a container: plain process tracking, no task binding (and no cgroup.conf)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd, hence no sacct: finished jobs stay visible to squeue for MinJobAge seconds
AccountingStorageType=accounting_storage/none
MinJobAge=600
# the proof: one line per finished job
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=tsmeta Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# --- 3. start the daemons -------------------------------------------------------------------------
# munged runs as user munge with a key of its own; setpriv execs it, so $! is munged itself
AS_MUNGE=(setpriv --reuid=munge --regid=munge --init-groups --)
"${AS_MUNGE[@]}" mungekey --create --keyfile="$STATE/munge/munge.key" >"$STATE/log/mungekey.log" 2>&1 ||
    skip "mungekey could not create a key ($(cat "$STATE/log/mungekey.log"))"
"${AS_MUNGE[@]}" munged --foreground --socket="$SOCKET" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed" >"$STATE/log/munged.log" 2>&1 &
MUNGED_PID=$!
for ((i = 0; i < 50; i++)); do
    munge -n -S "$SOCKET" 2>/dev/null | unmunge -S "$SOCKET" >/dev/null 2>&1 && break
    sleep 0.2
done
munge -n -S "$SOCKET" 2>/dev/null | unmunge -S "$SOCKET" >/dev/null 2>&1 ||
    skip "munged did not start: $(tail -n 3 "$STATE/log/munged.log" "$STATE/munge/munged.log" 2>/dev/null)"
say "munged up (pid $MUNGED_PID, socket $SOCKET)"

slurmctld -D -i -f "$SLURM_CONF" >"$STATE/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
for ((i = 0; i < 50; i++)); do
    scontrol ping 2>/dev/null | grep -q UP && break
    kill -0 "$CTLD_PID" 2>/dev/null || break
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q UP ||
    skip "slurmctld did not start: $(tail -n 5 "$STATE/log/slurmctld.log" "$STATE/log/slurmctld.out" 2>/dev/null)"
say "slurmctld up (pid $CTLD_PID, port $PORT)"

slurmd -D -f "$SLURM_CONF" >"$STATE/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for ((i = 0; i < 150; i++)); do
    state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1)
    [[ $state == idle ]] && break
    kill -0 "$SLURMD_PID" 2>/dev/null || break
    sleep 0.2
done
[[ $state == idle ]] ||
    skip "node $NODE not idle (state '${state:-none}'): $(tail -n 5 "$STATE/log/slurmd.log" "$STATE/log/slurmd.out" 2>/dev/null)"
say "slurmd up (pid $SLURMD_PID), node $NODE idle: $CPUS CPUs, partition tsmeta"

# --- 4. the workflow on SLURM ----------------------------------------------------------------
SLURM_DIR=$STATE/work/slurm
LOCAL_DIR=$STATE/work/local
SLURM_LOGS=$STATE/slurm_logs
# the local run of step 6 goes on beside it: the SLURM run mostly waits (job starts, status rounds)
say "same config locally (profiles/default, no max_runtime) in $LOCAL_DIR, beside the SLURM run"
t_local=$SECONDS
snakemake -s "$REPO/Snakefile" --configfile "$CONFIG" --directory "$LOCAL_DIR" --cores "$CPUS" \
    >"$STATE/log/snakemake-local.log" 2>&1 &
LOCAL_PID=$!

say "workflow on SLURM: snakemake --workflow-profile profiles/slurm --config max_runtime=$MAX_RUNTIME in $SLURM_DIR"
t_slurm=$SECONDS
run_logged "$STATE/log/snakemake-slurm.log" \
    snakemake -s "$REPO/Snakefile" --configfile "$CONFIG" --directory "$SLURM_DIR" \
    --workflow-profile "$REPO/profiles/slurm" \
    --config max_runtime=$MAX_RUNTIME \
    --slurm-no-account \
    --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks 2 \
    --seconds-between-status-checks 2 \
    --max-status-checks-per-second 5 \
    --slurm-logdir "$SLURM_LOGS" \
    --slurm-keep-successful-logs \
    --restart-times 0 ||
    fail "the workflow failed under SLURM (log: $STATE/log/snakemake-slurm.log)"
t_slurm=$((SECONDS - t_slurm))
say "SLURM run done in ${t_slurm}s"

# --- 5. did SLURM run the jobs? ------------------------------------------------------------------
# Every job the executor submitted has its log at <slurm-logdir>/rule_<rule>/<wildcards>/<jobid>.log;
# each of these SLURM job ids must be COMPLETED (exit 0:0) in the jobcomp file, and the number of
# SLURM jobs of each rule must match Snakemake's own job table, and every job's time limit must be
# at most max_runtime.
check_jobs() {  # check_jobs SNAKEMAKE_LOG LOGDIR EXPECTED_RULES MAX_MINUTES
"$PYTHON" - "$1" "$2" "$JOBCOMP" "$3" "$4" <<'EOF'
import re
import sys
from collections import Counter
from pathlib import Path

log_text, logdir, jobcomp, expected = (
    Path(sys.argv[1]).read_text(), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split()
)
max_minutes = int(sys.argv[5])  # every job's time limit at most this
errors = []

# Snakemake's job table ("Job stats:"): rule -> count, without the local target `all`
table = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", log_text, re.S)
planned = Counter()
for line in (table.group(1) if table else "").splitlines():
    match = re.match(r"^(\w+)\s+(\d+)\s*$", line)
    if match and match.group(1) not in ("job", "all"):
        planned[match.group(1)] = int(match.group(2))
if not table:
    errors.append("no 'Job stats' table in the Snakemake log")

# SLURM job ids per rule, from the executor's log files
submitted = {}
for path in logdir.rglob("*.log"):
    rule_dir = next((p for p in path.relative_to(logdir).parts if p.startswith("rule_")), None)
    if rule_dir and path.stem.isdigit():
        submitted[path.stem] = rule_dir.removeprefix("rule_")

# jobcomp/filetxt: one line of key=value fields per finished job
finished = {}
for line in jobcomp.read_text().splitlines() if jobcomp.exists() else []:
    fields = dict(re.findall(r"(\w+)=(\S*)", line))
    if "JobId" in fields:
        finished[fields["JobId"]] = (fields, line)

for job_id, rule in sorted(submitted.items(), key=lambda item: int(item[0])):
    fields, line = finished.get(job_id, ({}, ""))
    if fields.get("JobState") != "COMPLETED" or fields.get("ExitCode", "0:0") != "0:0":
        errors.append(f"SLURM job {job_id} (rule {rule}) not COMPLETED in jobcomp: {line or 'missing'}")
    else:
        print(f"  rule {rule:<9} {line}")
    limit = fields.get("TimeLimit", "")
    if not (limit.isdigit() and int(limit) <= max_minutes):
        errors.append(f"SLURM job {job_id} (rule {rule}): time limit {limit!r} over {max_minutes} min")
ran = Counter(submitted.values())
for rule in expected:
    if ran[rule] == 0:
        errors.append(f"rule {rule}: no SLURM job")
for rule in sorted(set(planned) | set(ran)):
    if planned[rule] != ran[rule]:
        errors.append(f"rule {rule}: Snakemake planned {planned[rule]} jobs, SLURM ran {ran[rule]}")
for message in errors:
    print("ERROR:", message)
summary = " ".join(f"{rule}={ran[rule]}" for rule in expected)
print(f"SLURM jobs COMPLETED: {sum(ran.values())} ({summary})")
Path(logdir.parent / f"jobs_{logdir.name}.txt").write_text(f"{sum(ran.values())} ({summary})\n")
sys.exit(1 if errors else 0)
EOF
}
sleep 1  # jobcomp is written when slurmctld processes the job end
check_jobs "$STATE/log/snakemake-slurm.log" "$SLURM_LOGS" "$EXPECTED_RULES" "$MAX_RUNTIME" ||
    fail "the jobcomp file does not prove that SLURM ran every job within $MAX_RUNTIME min"
grep -Eq "^simulate_segment +1$" "$STATE/log/snakemake-slurm.log" ||
    fail "the long run was not split into two jobs (log: $STATE/log/snakemake-slurm.log)"
resumed=$(grep -h "resumed from .*segment_1.ckpt" "$SLURM_DIR"/results/logs/simulate/*.log)
[[ -n $resumed ]] || fail "the last job of the split run did not resume from the first one's state"
say "the last job of the split run: ${resumed#*: }"

# --- 6. the same config locally (the split run in one job), same outputs? ----------------------
wait "$LOCAL_PID" || fail "the local run failed (log: $STATE/log/snakemake-local.log)"
LOCAL_PID=""
t_local=$((SECONDS - t_local))
say "local run done ${t_local}s after its start"

same_outputs() {  # same_outputs SLURM_DIR LOCAL_DIR: every netCDF file equal, figures in both
"$PYTHON" - "$1" "$2" <<'EOF'
import sys
from pathlib import Path

import xarray as xr

# attributes that record how long or where a stage ran, not what it computed
VOLATILE = {"wall_time_s", "noise_wall_time_s", "created", "date", "host", "hostname"}


def load(path):
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in VOLATILE}
    for var in ds.variables.values():
        var.attrs = {k: v for k, v in var.attrs.items() if k not in VOLATILE}
    return ds


slurm, local = Path(sys.argv[1]), Path(sys.argv[2])
errors = []
files = sorted(p.relative_to(local) for p in (local / "results").rglob("*.nc"))
others = sorted(p.relative_to(slurm) for p in (slurm / "results").rglob("*.nc"))
if files != others:
    errors.append(f"different netCDF files: local {files}, SLURM {others}")
for rel in files:
    if not (slurm / rel).exists():
        continue
    a, b = load(slurm / rel), load(local / rel)
    if not a.equals(b):
        bad = [n for n in a.data_vars if n not in b or not a[n].equals(b[n])]
        errors.append(f"{rel}: data differ ({bad or 'coordinates or variables'})")
    elif not a.identical(b):
        keys = sorted(k for k in set(a.attrs) | set(b.attrs) if a.attrs.get(k) != b.attrs.get(k))
        errors.append(f"{rel}: attributes differ ({keys or 'variable attributes'})")
figures = sorted(p.relative_to(local) for p in (local / "results" / "figures").glob("*.*"))
missing = [str(rel) for rel in figures if not (slurm / rel).is_file() or (slurm / rel).stat().st_size == 0]
if not figures:
    errors.append("no figures made")
if missing:
    errors.append(f"figures missing from the SLURM run: {missing}")
for message in errors:
    print("ERROR:", message)
print(f"outputs: {len(files)} netCDF files equal, {len(figures)} figures in both runs")
(slurm.parent / f"outputs_{slurm.name}.txt").write_text(
    f"{len(files)} netCDF files equal, {len(figures)} figures\n"
)
sys.exit(1 if errors else 0)
EOF
}
same_outputs "$SLURM_DIR" "$LOCAL_DIR" || fail "SLURM and local outputs differ"
echo "SUMMARY: PASS: $(slurmctld -V 2>&1), jobs COMPLETED $(cat "$STATE/jobs_slurm_logs.txt")" \
    "each within max_runtime = $MAX_RUNTIME min, $(cat "$STATE/work/outputs_slurm.txt")," \
    "SLURM run ${t_slurm}s, local run ${t_local}s; total $((SECONDS - T0))s"
exit 0
