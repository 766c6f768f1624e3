#!/usr/bin/env bash
# Scheduler benchmark (docs/performance.md, "Scheduler"):
#  1. back-off latency: a real `sparetime backup --when-idle` of a random image
#     runs; a keystroke on a real pseudo-terminal of a logged-in user (a utmp
#     file passed with --utmp) must stop its device reads. Per trial: the time
#     from the keystroke to the "paused" state line, and to the last read of
#     the job's reader thread (the only one reading the device: its rchar in
#     /proc/PID/task/TID/io, sampled every 1 ms). It resumes after
#     --idle-after 1 s and the next trial types again. p50/p99/max over
#     TRIALS (default 50).
#  2. foreground impact: a reader doing random 4 KiB O_DIRECT reads on a file
#     on the same disk, for SECONDS each: alone, next to a --when-idle backup
#     (idle I/O class, nice 19, SCHED_IDLE, no byte limit), and next to a plain
#     backup (normal priority) for contrast. p50/p99 read latency of each.
#
# Usage: bench/backoff.sh [--trials N] [--seconds S] [--out DIR]
# Env: SPARETIME_BIN (default build/agent/sparetime). Needs python3 (for the
# pty and the timing loop); root only to drop page caches. Bounded: every wait has a
# timeout, and the backup processes are killed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

trials=50 seconds=10 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --trials) trials=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
done
[ "$trials" -ge 1 ] && [ "$trials" -le 1000 ] || bench_die "--trials must be 1..1000"
command -v python3 >/dev/null || bench_die "python3 is needed"
bin=$(bench_find_sparetime)
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/backoff-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
echo "bench: results in $out" >&2

exec python3 - "$bin" "$out" "$trials" "$seconds" <<'PY'
import json, mmap, os, random, re, signal, statistics, struct, subprocess, sys, time

BIN, OUT, TRIALS, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
CHUNK = 64 << 10
env = dict(os.environ, SPARETIME_PASSPHRASE="bench passphrase")
children = []

def die(msg):
    for p in children:
        if p.poll() is None:
            p.kill()
    sys.exit("bench: " + msg)

def run(*args):
    r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        die(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout

def random_file(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())

def rchar(io_path):
    try:
        with open(io_path) as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]

def init_repo(name):
    repo = os.path.join(OUT, name)
    subprocess.run(["rm", "-rf", repo], check=True)
    run("--repo", repo, "init", "--kdf", "min", "--chunk-size", str(CHUNK))
    return repo

# ---- 1. back-off latency -------------------------------------------------
master, slave = os.openpty()
line = os.ttyname(slave)[len("/dev/"):]
utmp = os.path.join(OUT, "utmp")
# struct utmp (384 bytes): ut_type USER_PROCESS (7), pid, ut_line[32], id, user.
rec = struct.pack("hi32s4s32s", 7, os.getpid(), line.encode(), b"", b"bench")
with open(utmp, "wb") as f:
    f.write(rec.ljust(384, b"\0"))

image = os.path.join(OUT, "image.bin")
mib = 16 + TRIALS * 2  # ~0.3 s of reading per trial at 8 MiB/s, with margin
random_file(image, mib)
repo = init_repo("repo-backoff")
log_path = os.path.join(OUT, "backoff.log")
log = open(log_path, "w")
job = subprocess.Popen([BIN, "--repo", repo, "backup", image, "--when-idle", "--idle-after", "1",
                        "--ignore-load", "--bwlimit", "8M", "--checkpoint-mib", "64",
                        "--utmp", utmp], env=env, stdout=log, stderr=subprocess.STDOUT)
children.append(job)

def log_text():
    with open(log_path) as f:
        return f.read()

def wait_for(pattern, start, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if re.search(pattern, log_text()[start:]):
            return time.monotonic()
        if job.poll() is not None:
            die("the backup ended early:\n" + log_text())
        time.sleep(0.001)
    die(f"no '{pattern}' within {timeout} s:\n" + log_text())

wait_for(r": running \(", 0, 60)
time.sleep(0.5)
# The thread that has read the most is the imager's reader, the only one that
# reads the device (others read /proc and the repository index).
task = f"/proc/{job.pid}/task"
reader_io = max((f"{task}/{t}/io" for t in os.listdir(task)), key=lambda p: rchar(p) or -1)
to_line, to_stop = [], []
for t in range(TRIALS):
    time.sleep(0.3)  # let it read
    mark = len(log_text())
    typed = time.monotonic()
    os.write(master, b"x\n")
    os.read(slave, 64)  # the shell reads the line: the terminal input signal
    last_read, prev = typed, rchar(reader_io)
    paused_at = None
    while time.monotonic() - typed < 1.5 and paused_at is None or time.monotonic() - typed < 0.5:
        time.sleep(0.001)
        now = rchar(reader_io)
        if now is not None and prev is not None and now > prev:
            last_read = time.monotonic()
        prev = now
        if paused_at is None and ": paused at " in log_text()[mark:]:
            paused_at = time.monotonic()
    if paused_at is None:
        die(f"trial {t}: not paused within 1.5 s:\n" + log_text())
    to_line.append(paused_at - typed)
    to_stop.append(last_read - typed)
    wait_for(r": running again", mark, 30)
job.send_signal(signal.SIGINT)
job.wait(timeout=30)

def row(name, v):
    return (f"| {name} | {len(v)} | {pct(v, 50) * 1000:.1f} | {pct(v, 99) * 1000:.1f} "
            f"| {max(v) * 1000:.1f} |")

results = ["## Back-off latency (keystroke on a pty -> job)", "",
           "| measure | trials | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
           row("paused state line printed", to_line),
           row("last device read started", to_stop), ""]
print("\n".join(results), flush=True)

# ---- 2. foreground reader ------------------------------------------------
fg = os.path.join(OUT, "foreground.bin")
random_file(fg, 512)
big = os.path.join(OUT, "big.bin")
random_file(big, 3072)

def foreground(seconds):
    fd = os.open(fg, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)
    blocks = os.fstat(fd).st_size // 4096
    lat, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        off = random.randrange(blocks) * 4096
        t0 = time.monotonic()
        os.preadv(fd, [buf], off)
        lat.append(time.monotonic() - t0)
    os.close(fd)
    return lat

def with_backup(args, name):
    repo = init_repo("repo-" + name)
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL)
    p = subprocess.Popen([BIN, "--repo", repo, "backup", big, "--direct-io", *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children.append(p)
    time.sleep(1)  # past the start-up
    if p.poll() is not None:
        die(f"the {name} backup ended before the foreground run; use a larger file")
    lat = foreground(SECONDS)
    still = p.poll() is None
    p.kill()
    p.wait()
    return lat, still

alone = foreground(SECONDS)
idle_lat, idle_ok = with_backup(["--when-idle", "--idle-after", "0", "--ignore-load"], "idle")
plain_lat, plain_ok = with_backup([], "plain")
alone2 = foreground(SECONDS)  # the machine may have changed meanwhile

def frow(name, v, note=""):
    return (f"| {name} | {len(v)} | {pct(v, 50) * 1e3:.2f} | {pct(v, 99) * 1e3:.2f} | "
            f"{note} |")

base99 = pct(alone + alone2, 99)
results2 = ["## Foreground reader (random 4 KiB O_DIRECT reads, same disk)", "",
            "| next to | reads | p50 ms | p99 ms | p99 vs alone |", "|---|---|---|---|---|",
            frow("nothing (before)", alone), frow("nothing (after)", alone2),
            frow("backup --when-idle (idle I/O class, nice 19, SCHED_IDLE)", idle_lat,
                 f"{(pct(idle_lat, 99) / base99 - 1) * 100:+.0f}%"
                 + ("" if idle_ok else " (backup ended early)")),
            frow("plain backup (normal priority)", plain_lat,
                 f"{(pct(plain_lat, 99) / base99 - 1) * 100:+.0f}%"
                 + ("" if plain_ok else " (backup ended early)")), ""]
print("\n".join(results2), flush=True)
with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(results + results2) + "\n")
for path in (image, fg, big):
    os.unlink(path)
subprocess.run(["sh", "-c", f"rm -rf '{OUT}'/repo-*"], check=True)
PY
