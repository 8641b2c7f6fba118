"""Work conservation: run bench_sched (mproc, processes and threads) and
bench_sched.py (Python's multiprocessing.Pool(4)) alternately, several
rounds, and print one Markdown table against the greedy schedule.

The greedy schedule is list scheduling with no overhead: each idle worker
takes the next task in submission order. Both programs compute it from the
task list they run, and this script checks that the two agree. Per round:
makespan / greedy makespan, and the last quick task's arrival minus the
greedy schedule's last quick completion (its lateness, ms); then median
(min-max) over the rounds. Targets (from the dispatch issue), judged on
the median, with the rounds that met them: makespan within 1.05x of
greedy; no quick task later than greedy's last quick one by more than
50 ms. Two diagnostics say which way a task was late (bench_sched.c):
"idle while waiting", worker-ms during which a worker was idle while a
submitted task had not started (a task queued behind a busy worker), and
"result held", the longest a finished task's result took to reach the
caller (a result kept back behind later tasks).

Usage: python3 bench/compare_sched.py BUILD_DIR [--rounds N] [--warm N]
                                       [--only NAME,...]
--only takes scenario (mixed, slow-first), api (imap_unordered,
apply_async) and backend (processes, threads, py-pool) names; a kind not
named is not filtered. --warm N runs N tasks of 0 ms on each fresh pool
before the measure (default: none).
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["mixed", "slow-first"]
APIS = ["imap_unordered", "apply_async"]
BACKENDS = [("processes", "mproc processes"), ("threads", "mproc threads"),
            ("py-pool", "Python `Pool(4)`")]
MAKESPAN_TARGET = 1.05
LATE_TARGET_MS = 50.0


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"compare_sched: {' '.join(cmd)} failed "
                 f"({p.returncode}):\n{p.stderr}")
    vals = {}
    for line in p.stdout.splitlines():
        name, value, unit = line.split()
        vals[name] = float(value)
    return vals


def summary(xs, fmt):
    m = statistics.median(xs)
    return f"{fmt.format(m)} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def verdict(xs, ok):
    met = sum(1 for x in xs if ok(x))
    return f"{'met' if ok(statistics.median(xs)) else 'missed'} ({met}/{len(xs)})"


def option(args, name, default):
    if name not in args:
        return default
    i = args.index(name)
    if i + 1 >= len(args):
        sys.exit(f"{name} needs a value")
    return args[i + 1]


def source_state():
    try:
        return subprocess.run(
            ["git", "-C", HERE, "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    args = sys.argv[1:]
    build = args[0] if args and not args[0].startswith("--") else "build"
    rounds = int(option(args, "--rounds", "3"))
    warm = option(args, "--warm", None)
    only = option(args, "--only", None)
    extra = (["--warm", warm] if warm else []) + (["--only", only] if only else [])
    names = only.split(",") if only else []
    backends_named = [b for b, _ in BACKENDS if b in names]
    run_c = not backends_named or any(b in names for b in ("processes", "threads"))
    run_py = not backends_named or "py-pool" in names
    c_cmd = [os.path.join(build, "bench", "bench_sched")] + extra
    py_cmd = [sys.executable, os.path.join(HERE, "bench_sched.py")] + extra

    source = source_state()  # before the rounds: the tree may move under a long run
    started = time.monotonic()
    data = {}  # measure name -> [value per round]
    greedy = {}
    for r in range(rounds):
        for who, cmd, on in (("C", c_cmd, run_c), ("Python", py_cmd, run_py)):
            if not on:
                continue
            for k, v in run(cmd).items():
                if "/greedy/" in k:
                    if k in greedy and abs(greedy[k] - v) > 1e-9:
                        sys.exit(f"compare_sched: {k}: {v} from {who}, "
                                 f"{greedy[k]} before: not the same work")
                    greedy[k] = v
                else:
                    data.setdefault(k, []).append(v)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    elapsed = time.monotonic() - started

    print(f"{rounds} rounds, {'no warm-up' if not warm else f'warm-up of {warm} tasks'}, "
          f"4 workers, source {source}; run time {elapsed:.0f} s")
    print()
    print("| scenario | api | pool | makespan (s) | / greedy | target <= 1.05x "
          "| last quick task (s) | vs greedy (ms) | target <= +50 ms "
          "| idle while waiting (worker-ms) | result held, max (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        gk_span, gk_quick = f"{s}/greedy/makespan", f"{s}/greedy/last_quick"
        if gk_span not in greedy:
            continue
        g_span, g_quick = greedy[gk_span], greedy[gk_quick]
        print(f"| {s} | | greedy (analytic) | {g_span:.3f} | 1.00x | "
              f"| {g_quick:.3f} | 0 | | 0 | 0 |")
        for api in APIS:
            for b, label in BACKENDS:
                v = f"{s}/{api}/{b}"
                if f"{v}/makespan" not in data:
                    continue
                span = data[f"{v}/makespan"]
                quick = data[f"{v}/last_quick"]
                idle = [x * 1e3 for x in data[f"{v}/idle_wait"]]
                held = [x * 1e3 for x in data[f"{v}/held"]]
                ratio = [x / g_span for x in span]
                late = [(x - g_quick) * 1e3 for x in quick]
                print(f"| {s} | {api} | {label} | {summary(span, '{:.3f}')} "
                      f"| {summary(ratio, '{:.3f}x')} "
                      f"| {verdict(ratio, lambda x: x <= MAKESPAN_TARGET)} "
                      f"| {summary(quick, '{:.3f}')} "
                      f"| {summary(late, '{:+.0f}')} "
                      f"| {verdict(late, lambda x: x <= LATE_TARGET_MS)} "
                      f"| {summary(idle, '{:.0f}')} "
                      f"| {summary(held, '{:.1f}')} |")


if __name__ == "__main__":
    main()
