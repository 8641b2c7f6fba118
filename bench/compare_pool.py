"""Run bench_pool (mproc and its floors) and bench_pool.py (Python's Pool)
alternately, several times, and print the comparison as a Markdown table.

Every ratio is taken within one round (mproc and Python measured back to
back on the same machine state), then summarised as median (min-max) over
the rounds: the machine is shared and noisy, absolute times drift.

Usage: python3 bench/compare_pool.py BUILD_DIR [--rounds N] [--quick]
                                      [--only NAME,...]
With --only, just those measures run (e.g. map_default), and only the
tables (and, against Python, the rows) they make are printed.
"""
import contextlib
import io
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        name, value, unit = line.split()
        vals[name] = (float(value), unit)
    return vals


def summary(xs, fmt):
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def main():
    args = sys.argv[1:]
    build = args[0] if args and not args[0].startswith("--") else "build"
    rounds = 5
    if "--rounds" in args:
        rounds = int(args[args.index("--rounds") + 1])
    quick = ["--quick"] if "--quick" in args else []
    if "--only" in args:
        if args.index("--only") + 1 >= len(args):
            sys.exit("--only needs NAME,...")
        quick += ["--only", args[args.index("--only") + 1]]
    c_cmd = [os.path.join(build, "bench", "bench_pool")] + quick
    py_cmd = [sys.executable, os.path.join(HERE, "bench_pool.py")] + quick

    rows = {}
    for r in range(rounds):
        c = run(c_cmd)
        py = run(py_cmd)
        for k, (v, unit) in c.items():
            rows.setdefault(("mproc", k, unit), []).append(v)
        for k, (v, unit) in py.items():
            rows.setdefault(("python", k, unit), []).append(v)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)

    def get(who, k):
        for (w, name, unit), v in rows.items():
            if w == who and name == k:
                return v, unit
        raise KeyError(k)

    tables(get)


def tables(get):
    """Print every table whose measures ran (all of them without --only)."""
    for table in (versus_python, floors, faults):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                table(get)
        except KeyError:
            continue
        print(out.getvalue(), end="")


def versus_python(get):
    print("| measure | mproc | Python `multiprocessing.Pool(2)` | ratio (median, min–max) | target |")
    print("|---|---|---|---|---|")
    specs = [
        ("imap_c1", "imap, chunksize 1, empty task", "higher", ">= 15x Python"),
        ("map_default", "map, default chunksize, 10^6 inputs", "higher", ">= 5x Python"),
        ("apply_rtt", "apply round trip", "lower", ">= 5x faster than Python"),
        ("open_apply_close", "open Pool(2), one apply, close, join", "lower", ">= 10x faster than Python"),
    ]
    printed = 0
    for key, label, better, target in specs:
        try:
            m, unit = get("mproc", key)
            p, _ = get("python", key)
        except KeyError:
            continue
        printed += 1
        ratios = [a / b if better == "higher" else b / a for a, b in zip(m, p)]
        print(f"| {label} ({unit}) | {summary(m, '{:,.2f}')} | {summary(p, '{:,.2f}')} "
              f"| {summary(ratios, '{:.1f}x')} | {target} |")
    if not printed:
        raise KeyError("no measure of this table ran")


def floors(get):
    print()
    print("| floor | mproc | floor | ratio (median, min–max) | target |")
    print("|---|---|---|---|---|")
    m, unit = get("mproc", "apply_rtt")
    f, _ = get("mproc", "pipe_rtt")
    print(f"| apply round trip vs bare pipe round trip ({unit}) | {summary(m, '{:.2f}')} "
          f"| {summary(f, '{:.2f}')} | {summary([a / b for a, b in zip(m, f)], '{:.2f}x')} | <= 1.5x |")
    m, unit = get("mproc", "imap_c1")
    f, _ = get("mproc", "floor_imap")
    print(f"| imap chunksize 1 vs minimal fork-and-pipe pool ({unit}) | {summary(m, '{:,.0f}')} "
          f"| {summary(f, '{:,.0f}')} | {summary([a / b for a, b in zip(m, f)], '{:.1f}x')} faster | within 2x |")
    f, _ = get("mproc", "transport_ceiling")
    print(f"| imap chunksize 1 vs batched pipe transport, for scale ({unit}) | {summary(m, '{:,.0f}')} "
          f"| {summary(f, '{:,.0f}')} | {summary([b / a for a, b in zip(m, f)], '{:.1f}x')} slower | (none) |")


def faults(get):
    print()
    print("| fault machinery | mproc | anchor | ratio (median, min–max) | target |")
    print("|---|---|---|---|---|")
    m, unit = get("mproc", "recovery")
    f, _ = get("mproc", "fork_wait")
    print(f"| worker death seen -> replacement ready, vs fork + exit + wait of an empty child ({unit}) "
          f"| {summary(m, '{:,.0f}')} | {summary(f, '{:,.0f}')} "
          f"| {summary([a / b for a, b in zip(m, f)], '{:.1f}x')} | (none) |")
    m, unit = get("mproc", "open_apply_close_forkserver")
    f, _ = get("mproc", "open_apply_close")
    print(f"| open Pool(2), one apply, close, join: forkserver vs fork start method ({unit}) "
          f"| {summary(m, '{:.2f}')} | {summary(f, '{:.2f}')} "
          f"| {summary([a / b for a, b in zip(m, f)], '{:.2f}x')} | (none) |")
    m, unit = get("mproc", "crash_task")
    print(f"| one segfaulting task, end to end ({unit}) | {summary(m, '{:,.0f}')} | | | (none) |")
    m, unit = get("mproc", "imap_c1_timeout")
    f, _ = get("mproc", "imap_c1")
    print(f"| imap chunksize 1, empty task, task_timeout set vs unset ({unit}) "
          f"| {summary(m, '{:,.0f}')} | {summary(f, '{:,.0f}')} "
          f"| {summary([(b / a - 1) * 100 for a, b in zip(m, f)], '{:+.0f}%')} cost | < 10% |")


if __name__ == "__main__":
    main()
