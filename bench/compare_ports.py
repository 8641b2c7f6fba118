"""Run bench_ports (mproc's Queue, Pipe, Lock, Process and their bare-pipe
floors) and bench_ports.py (Python's multiprocessing on the same work)
alternately, several rounds, and print the comparison as Markdown.

Every ratio is taken within one round (mproc and Python, or mproc and its
floor, measured back to back on the same machine state), then summarised
as median (min-max) over the rounds: the machine is shared and noisy.

Usage: python3 bench/compare_ports.py BUILD_DIR [--rounds N] [--quick]
"""
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {l.split()[0]: float(l.split()[1]) for l in out.splitlines()}


def summary(xs, fmt="{:.1f}"):
    return (f"{fmt.format(statistics.median(xs))} "
            f"({fmt.format(min(xs))}–{fmt.format(max(xs))})")


# (name, unit, higher is better, target against Python)
MEASURES = [
    ("queue_items_per_s", "items/s", True, "≥ 10x"),
    ("queue_latency_us", "µs one way", False, ""),
    ("conn_rtt_us", "µs", False, ""),
    ("lock_uncontended_ns", "ns", False, ""),
    ("lock_contended_ns", "ns an acquire", False, ""),
    ("process_start_join_us", "µs", False, "≥ 10x"),
    ("process_forkserver_start_join_us", "µs", False, "≥ 10x"),
]
# (mproc measure, floor measure, higher is better, target)
FLOORS = [
    ("queue_items_per_s", "pipe_items_per_s", True, "within 2x"),
    ("queue_items_per_s", "pipe_batched_items_per_s", True, "(stricter floor)"),
    ("conn_rtt_us", "barepipe_rtt_us", False, "within 1.5x"),
    ("process_start_join_us", "fork_wait_us", False, ""),
    ("process_forkserver_start_join_us", "fork_wait_us", False, ""),
]


def main():
    args = sys.argv[1:]
    build = args[0] if args and not args[0].startswith("--") else "build"
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 5
    quick = ["--quick"] if "--quick" in args else []
    c_cmd = [os.path.join(build, "bench", "bench_ports")] + quick
    py_cmd = [sys.executable, os.path.join(HERE, "bench_ports.py")] + quick
    c_all, py_all = [], []
    for r in range(rounds):
        c_all.append(run(c_cmd))
        py_all.append(run(py_cmd))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)

    print("| measure | mproc | Python | mproc's advantage (median, min–max) | target |")
    print("|---|---|---|---|---|")
    for name, unit, higher, target in MEASURES:
        c = [r[name] for r in c_all]
        p = [r[name] for r in py_all]
        ratio = [(a / b if higher else b / a) for a, b in zip(c, p)]
        fmt = "{:.0f}" if higher else "{:.2f}"
        print(f"| {name} ({unit}) | {summary(c, fmt)} | {summary(p, fmt)} | "
              f"{summary(ratio, '{:.1f}')}x | {target} |")
    print()
    # Process start+join round by round: the spread is the machine's.
    print("| round | fork: mproc µs | Python µs | advantage | forkserver: mproc µs "
          "| Python µs | advantage | bare fork µs |")
    print("|---|---|---|---|---|---|---|---|")
    for r, (c, p) in enumerate(zip(c_all, py_all), 1):
        a, b = c["process_start_join_us"], p["process_start_join_us"]
        fa = c["process_forkserver_start_join_us"]
        fb = p["process_forkserver_start_join_us"]
        print(f"| {r} | {a:.0f} | {b:.0f} | {b / a:.1f}x | {fa:.0f} | {fb:.0f} "
              f"| {fb / fa:.1f}x | {c['fork_wait_us']:.0f} |")
    print()
    print("| mproc | floor | mproc / floor cost (median, min–max) | target |")
    print("|---|---|---|---|")
    for name, floor, higher, target in FLOORS:
        ratio = [(r[floor] / r[name] if higher else r[name] / r[floor])
                 for r in c_all]
        print(f"| {name} | {floor} | {summary(ratio, '{:.2f}')}x | {target} |")


if __name__ == "__main__":
    main()
