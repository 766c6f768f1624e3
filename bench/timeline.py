#!/usr/bin/env python3
"""How many cores a command keeps busy over time, from the scheduler's view.

Usage: bench/timeline.py [--bucket SEC] -- COMMAND [ARGS...]   (root: perf sched)

Runs COMMAND under `perf sched record`, then prints, per bucket of wall time
(default 0.1 s), the cores its threads were on the CPU, and at the end the
average, the span and each thread's on-CPU and off-CPU (sleep + runqueue)
seconds. A CPU-bound pipeline on N cores shows N in every bucket; dips show
where its threads wait (e.g. for a final fsync). Needs `perf` (linux-perf).
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

LINE = re.compile(r"\s*([\d.]+)\s+\[\d+\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", type=float, default=0.1)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        run = subprocess.run(["perf", "sched", "record", "-q", "-o", data, "--"] + command)
        if run.returncode != 0:
            sys.exit(f"timeline: the command exited with {run.returncode}")
        hist = subprocess.run(["perf", "sched", "timehist", "-i", data], capture_output=True,
                              text=True, check=True).stdout
    comm = os.path.basename(command[0])[:15]  # the kernel's comm is 15 bytes
    runs = []  # (end time, task, seconds on the CPU, seconds off it before)
    for line in hist.splitlines():
        m = LINE.match(line)
        if m and m.group(2).startswith(comm + "["):
            wait, delay, on = (float(m.group(i)) / 1000 for i in (3, 4, 5))
            runs.append((float(m.group(1)), m.group(2), on, wait + delay))
    if not runs:
        sys.exit(f"timeline: no scheduler events for {comm}")
    start = min(end - on for end, _, on, _ in runs)
    stop = max(end for end, _, _, _ in runs)
    buckets = [0.0] * (int((stop - start) / args.bucket) + 1)
    on_cpu, off_cpu = collections.Counter(), collections.Counter()
    for end, task, on, off in runs:
        on_cpu[task] += on
        off_cpu[task] += off
        lo = end - on
        while lo < end:
            b = min(int((lo - start) / args.bucket), len(buckets) - 1)
            hi = min(end, start + (b + 1) * args.bucket)
            if hi <= lo:  # float edge: finish in this bucket
                hi = end
            buckets[b] += hi - lo
            lo = hi
    for b, busy in enumerate(buckets):
        print(f"{b * args.bucket:6.1f} s  {busy / args.bucket:4.2f} cores")
    span = stop - start
    print(f"span {span:.2f} s, average {sum(buckets) / span:.2f} cores")
    for task in sorted(on_cpu):
        print(f"  {task:32s} on CPU {on_cpu[task]:6.2f} s  off {off_cpu[task]:6.2f} s")


if __name__ == "__main__":
    main()
