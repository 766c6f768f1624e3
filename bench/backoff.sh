#!/usr/bin/env bash
# Scheduler benchmark (docs/performance.md, "Scheduler"):
#  1. back-off latency: a real `sparetime backup --when-idle` of a random image
#     runs; a keystroke on a real pseudo-terminal of a logged-in user (a utmp
#     file passed with --utmp) must stop its device reads. Per trial: the time
#     from the keystroke to the "paused" state line, and to the last read of
#     the job's two reader threads (the only ones reading the device: their
#     rchar in /proc/PID/task/TID/io, sampled every 1 ms). It resumes after
#     --idle-after 1 s and the next trial types again. p50/p99/max over
#     TRIALS (default 50).
#  2. foreground impact: a reader doing random 4 KiB O_DIRECT reads on a file
#     on the same disk, for SECONDS each: alone, next to a --when-idle backup
#     (idle I/O class, nice 19, SCHED_IDLE, no byte limit), and next to a plain
#     backup (normal priority) for contrast, and a --when-idle backup with the
#     load checks on (it backs off LOAD_GRACE s, default 1, after others' CPU
#     or disk load crossed a threshold). The conditions alternate for ROUNDS
#     rounds (default 3) and a last "alone" closes, so a drift of the machine
#     hits every condition alike; p50/p99 read latency pooled per condition,
#     and each round's p99. The disk's I/O scheduler is printed: the idle I/O
#     class is honoured by bfq only.
#
# Usage: bench/backoff.sh [--trials N] [--seconds S] [--rounds R]
#                         [--only backoff|foreground] [--load-grace S] [--out DIR]
# Env: SPARETIME_BIN (default build/agent/sparetime). Needs python3 (for the
# pty and the timing loop); root only to drop page caches. Bounded: every wait has a
# timeout, and the backup processes are killed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

trials=50 seconds=10 rounds=3 only="" load_grace=1 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --trials) trials=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --load-grace) load_grace=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
done
[ "$trials" -ge 1 ] && [ "$trials" -le 1000 ] || bench_die "--trials must be 1..1000"
[ "$rounds" -ge 1 ] && [ "$rounds" -le 20 ] || bench_die "--rounds must be 1..20"
case $only in ""|backoff|foreground) ;; *) bench_die "--only takes backoff or foreground" ;; esac
command -v python3 >/dev/null || bench_die "python3 is needed"
bin=$(bench_find_sparetime)
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/backoff-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
echo "bench: results in $out" >&2

exec python3 - "$bin" "$out" "$trials" "$seconds" "$rounds" "$only" "$load_grace" <<'PY'
import json, mmap, os, random, re, signal, statistics, struct, subprocess, sys, threading, time

BIN, OUT, TRIALS, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ROUNDS, ONLY, LOAD_GRACE = int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
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
def backoff_latency():
    master, slave = os.openpty()
    line = os.ttyname(slave)[len("/dev/"):]
    utmp = os.path.join(OUT, "utmp")
    # struct utmp (384 bytes): ut_type USER_PROCESS (7), pid, ut_line[32], id, user.
    rec = struct.pack("hi32s4s32s", 7, os.getpid(), line.encode(), b"", b"bench")
    with open(utmp, "wb") as f:
        f.write(rec.ljust(384, b"\0"))

    image = os.path.join(OUT, "image.bin")
    # Per trial: the rate limiter's burst (1 s = 8 MiB, refilled while paused)
    # and ~0.3 s of reading at 8 MiB/s, with margin.
    mib = 16 + TRIALS * 12
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
    # The two threads that have read the most are the imager's readers, the only
    # ones that read the device (others read /proc and the repository index).
    task = f"/proc/{job.pid}/task"
    readers_io = sorted((f"{task}/{t}/io" for t in os.listdir(task)),
                        key=lambda p: rchar(p) or -1)[-2:]
    def readers_rchar():
        counts = [rchar(p) for p in readers_io]
        return None if None in counts else sum(counts)
    to_line, to_stop = [], []
    for t in range(TRIALS):
        time.sleep(0.3)  # let it read
        mark = len(log_text())
        typed = time.monotonic()
        os.write(master, b"x\n")
        os.read(slave, 64)  # the shell reads the line: the terminal input signal
        last_read, prev = typed, readers_rchar()
        paused_at = None
        while time.monotonic() - typed < 1.5 and paused_at is None or time.monotonic() - typed < 0.5:
            time.sleep(0.001)
            now = readers_rchar()
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
    os.unlink(image)
    return results

# ---- 2. foreground reader ------------------------------------------------
def disk_scheduler(path):
    """The I/O scheduler of the disk holding path ("[bfq]" style), or "?"."""
    dev = os.stat(path).st_dev
    sysdir = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    for d in (sysdir, os.path.dirname(sysdir)):  # a partition's queue is its disk's
        try:
            with open(os.path.join(d, "queue", "scheduler")) as f:
                return f"{os.path.basename(d)}: {f.read().strip()}"
        except OSError:
            pass
    return "?"

def foreground_impact():
    fg = os.path.join(OUT, "foreground.bin")
    random_file(fg, 512)
    big = os.path.join(OUT, "big.bin")
    random_file(big, max(3072, 300 * (int(SECONDS) + 3)))  # outlasts SECONDS at 300 MB/s
    scheduler = disk_scheduler(fg)

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
        """Foreground latencies next to a backup, and when (s after the
        foreground started) the job printed its first "paused" line."""
        repo = init_repo("repo-" + name)
        subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL)
        p = subprocess.Popen([BIN, "--repo", repo, "backup", big, *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        children.append(p)
        paused, running, lines = [], threading.Event(), []
        def watch():
            for text in p.stdout:
                lines.append(text.rstrip())
                if ": running" in text:
                    running.set()
                if ": paused at " in text and not paused:
                    paused.append(time.monotonic())
        threading.Thread(target=watch, daemon=True).start()
        if "--when-idle" in args and not running.wait(60):
            die(f"the {name} backup did not start within 60 s:\n" + "\n".join(lines[-5:]))
        time.sleep(1)  # past the start-up
        if p.poll() is not None:
            die(f"the {name} backup ended before the foreground run; use a larger file")
        started = time.monotonic()
        lat = foreground(SECONDS)
        still = p.poll() is None
        p.kill()
        p.wait()
        if not still:
            die(f"the {name} backup ended during the foreground run; use fewer --seconds")
        return lat, (paused[0] - started if paused else None)

    when_idle = ["--when-idle", "--idle-after", "0"]
    runs = {"idle": when_idle + ["--ignore-load"],
            "load": when_idle + ["--load-grace", str(LOAD_GRACE)],
            "plain": []}
    conditions = {"alone": [], "idle": [], "load": [], "plain": []}
    rounds, backoff_at = [], []
    for _ in range(ROUNDS):
        r = {"alone": foreground(SECONDS)}
        for key, args in runs.items():
            r[key], paused = with_backup(args, key)
            if key == "load":
                backoff_at.append(paused)
        for k, v in r.items():
            conditions[k] += v
        rounds.append(r)
    conditions["alone"] += foreground(SECONDS)  # the machine may have drifted meanwhile
    os.unlink(fg)
    os.unlink(big)
    subprocess.run(["sh", "-c", f"rm -rf '{OUT}'/repo-*"], check=True)

    base99 = pct(conditions["alone"], 99)
    def frow(name, key):
        v = conditions[key]
        vs = "" if key == "alone" else f"{(pct(v, 99) / base99 - 1) * 100:+.0f}%"
        per = " / ".join(f"{pct(r[key], 99) * 1e3:.2f}" for r in rounds)
        return (f"| {name} | {len(v)} | {pct(v, 50) * 1e3:.3f} | {pct(v, 99) * 1e3:.2f} | {vs} "
                f"| {per} |")
    return ["## Foreground reader (random 4 KiB O_DIRECT reads, same disk)", "",
            f"I/O scheduler {scheduler}; {ROUNDS} rounds "
            f"of {SECONDS:g} s per condition.", "",
            "| next to | reads | p50 ms | p99 ms | p99 vs alone | p99 per round ms |",
            "|---|---|---|---|---|---|",
            frow("nothing", "alone"),
            frow("backup --when-idle --ignore-load (idle I/O class, nice 19, SCHED_IDLE; "
                 "never backs off)", "idle"),
            frow(f"backup --when-idle --load-grace {LOAD_GRACE} (the same, and backs off "
                 "on others' load)", "load"),
            frow("plain backup (normal priority)", "plain"), "",
            "With load checks on, the job printed `paused` this long after the foreground "
            "reader started: " + ", ".join("never" if t is None else f"{t:.2f} s"
                                          for t in backoff_at) + ".", ""]

results = []
if ONLY in ("", "backoff"):
    results += backoff_latency()
if ONLY in ("", "foreground"):
    lines = foreground_impact()
    print("\n".join(lines), flush=True)
    results += lines
with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(results) + "\n")
PY
