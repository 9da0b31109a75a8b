#!/usr/bin/env python3
"""Paired, shuffled A/B runs of one command under several allocators.

On this shared, noisy machine two copies of one library differ by up to 5%
in interleaved medians of a short benchmark; ratios taken per round (each
round runs every library once, in a fresh random order) and then their
median put them at 1.000 with quartiles of +-3% (session 15). Use it to
compare builds of libhakmem.so, or hakmem with a peer, on any program:

  tools/paired_ab.py --reps 11 --cmd 'LD_PRELOAD={lib} ./larson 1 16 1024 20000000 1' \\
      base=/tmp/old.so new=bazel-bin/hakmem/libhakmem.so tc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

The metric is the last number on the command's last line of output (or of
stderr, with --stderr); higher is better unless --lower. Prints, per
library, the median metric and the median and quartiles of its per-round
ratio to the first library (above 1: faster than the first).

--copies N runs each library from N copies of its file, one per round in
turn, and prints each copy's median too. Where the kernel put a library's
file pages can matter more than the code: one copy of session 16's library
ran a 16 B tear-down's frees 2.5x slower, and one of session 17's a 16 B
build and tear-down 1.8x slower, than every other copy of the same bytes. A copy that
stands out is that, not the build. (Two builds that differ in code also
differ in where every function lands: check a gain of a few percent again
with both built with `bazel build --config=aligned` (every function
64-byte aligned); session 17 saw a 1.11x read 1.05x built so.)
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def metric(text):
    lines = [line for line in text.strip().split("\n") if NUMBER.search(line)]
    if not lines:
        return None
    return float(NUMBER.findall(lines[-1])[-1])


def quartiles(values):
    q = sorted(values)
    return q[len(q) // 4], q[(3 * len(q)) // 4]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=11, help="rounds (default 11)")
    parser.add_argument("--cmd", required=True, help="command; {lib} is the library's path")
    parser.add_argument("--lower", action="store_true", help="lower metrics are better")
    parser.add_argument("--stderr", action="store_true", help="read the metric from stderr")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    parser.add_argument("--copies", type=int, default=1,
                        help="run each library from this many copies of its file, in turn")
    parser.add_argument("libs", nargs="+", help="name=path, the first is the base")
    args = parser.parse_args(argv)
    libs = []
    for spec in args.libs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"expected name=path, got {spec!r}")
        libs.append((name, path))
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.copies < 1:
        parser.error("--copies must be at least 1")
    if args.copies > args.reps:
        parser.error("--copies must not exceed --reps (each copy runs in its own rounds)")
    if len({name for name, _ in libs}) != len(libs):
        parser.error("library names must differ")
    copies = {name: [path] for name, path in libs}
    tmp = None
    if args.copies > 1:
        for name, path in libs:  # before anything is made that needs removing
            if not os.path.isfile(path):
                parser.error(f"--copies needs files, and {name}'s {path!r} is none")
        tmp = tempfile.mkdtemp(prefix="paired_ab_")
    try:
        if tmp is not None:
            for i, (name, path) in enumerate(libs):
                # Named by position: a name may hold a '/'.
                copies[name] = [os.path.join(tmp, f"{i}.{k}{os.path.splitext(path)[1]}")
                                for k in range(args.copies)]
                for copy in copies[name]:
                    shutil.copy(path, copy)  # with its mode: {lib} may be run
        return run_rounds(args, libs, copies)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run_rounds(args, libs, copies):
    rng = random.Random(args.seed)
    values = {name: [] for name, _ in libs}
    for round_index in range(args.reps):
        order = libs[:]
        rng.shuffle(order)
        for name, _ in order:
            path = copies[name][round_index % len(copies[name])]
            run = subprocess.run(args.cmd.format(lib=path), shell=True, capture_output=True,
                                 text=True)
            value = metric(run.stderr if args.stderr else run.stdout)
            if run.returncode != 0 or value is None or value <= 0:
                sys.stderr.write(f"paired_ab: {name}: no metric (exit {run.returncode})\n"
                                 f"{run.stdout}{run.stderr}")
                return 1
            values[name].append(value)
    base = values[libs[0][0]]
    for name, _ in libs:
        ratios = [b / v if args.lower else v / b for v, b in zip(values[name], base)]
        low, high = quartiles(ratios)
        print(f"{name:16s} median {statistics.median(values[name]):12.4f}   "
              f"x{statistics.median(ratios):.4f} of {libs[0][0]} (quartiles {low:.4f}-{high:.4f})")
    if args.copies > 1:
        for name, _ in libs:
            medians = [statistics.median(values[name][k::args.copies])
                       for k in range(args.copies) if values[name][k::args.copies]]
            print(f"{name:16s} per copy " + " ".join(f"{m:.4f}" for m in medians))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
