"""Python's multiprocessing.Pool(4) on the work of bench_sched.c.

The same two scenarios (mixed, slow-first), the same two APIs
(imap_unordered with chunksize 1; apply_async, one call per task, all
submitted, then all fetched), a fresh Pool(4) (fork start method) per
variant, settled 100 ms, no warm-up tasks unless --warm N; the task sleeps
(time.sleep: clock_nanosleep) for its argument in ms and returns
(ms, pid, native thread id, start_ns, end_ns) on CLOCK_MONOTONIC, the clock
bench_sched.c reads.

Prints one line per measure, "scenario/api/py-pool/measure value unit", and
the greedy schedule of each scenario ("scenario/greedy/measure"), computed
here from this script's own task list: compare_sched.py checks that it
matches bench_sched's, i.e. that both ran the same work.

Usage: python3 bench/bench_sched.py [--only NAME,...] [--warm N]
"""
import multiprocessing as mp
import os
import sys
import threading
import time

WORKERS = 4
SETTLE = 0.1
BACKEND = "py-pool"


def mixed():
    ms = [200 if i % 50 == 0 else 2 for i in range(400)]
    return ms, [i % 50 != 0 for i in range(400)]


def slow_first():
    ms = [1500] + [10] * 40
    return ms, [False] + [True] * 40


SCENARIOS = [("mixed", mixed), ("slow-first", slow_first)]
APIS = ["imap_unordered", "apply_async"]


def sleep_ms(ms):
    start = time.monotonic_ns()
    time.sleep(ms / 1000)
    end = time.monotonic_ns()
    return ms, os.getpid(), threading.get_native_id(), start, end


def greedy(ms, quick):
    """List scheduling, no overhead: the next task in submission order goes
    to the worker free first (the lowest-numbered on a tie)."""
    free = [0] * WORKERS
    span = last_quick = 0
    for d, q in zip(ms, quick):
        w = free.index(min(free))
        free[w] += d
        span = max(span, free[w])
        if q:
            last_quick = max(last_quick, free[w])
    return span / 1e3, last_quick / 1e3


def idle_wait_ns(recs):
    """Integral of min(idle workers, waiting tasks) over time; recs are
    (submit, start, end) in ns. As idle_wait_ns() in bench_sched.c."""
    ev = []
    for submit, start, end in recs:
        start = max(start, submit)
        ev += [(submit, 1, 0), (start, -1, 1), (end, 0, -1)]
    ev.sort(key=lambda e: e[0])
    total = waiting = running = 0
    for k, (t, dw, dr) in enumerate(ev):
        if k:
            m = min(WORKERS - running, waiting)
            if m > 0:
                total += m * (t - ev[k - 1][0])
        waiting += dw
        running += dr
    return total


def run_imap_unordered(pool, ms):
    """(t0, [(submit, arrival, value)]) in arrival order."""
    out = []
    t0 = time.monotonic_ns()
    for v in pool.imap_unordered(sleep_ms, ms, 1):
        out.append((t0, time.monotonic_ns(), v))
    return t0, out


def run_apply_async(pool, ms):
    slots = [None] * len(ms)

    def done(i, submit):
        def cb(v):
            slots[i] = (submit, time.monotonic_ns(), v)
        return cb

    t0 = time.monotonic_ns()
    rs = []
    for i, d in enumerate(ms):
        submit = time.monotonic_ns()
        rs.append(pool.apply_async(sleep_ms, (d,), callback=done(i, submit)))
    for r in rs:
        r.get()  # returns after its callback ran (ApplyResult._set)
    return t0, slots


def run_variant(name, ms, quick, api, warm):
    with mp.Pool(WORKERS) as pool:
        if warm:
            pool.map(sleep_ms, [0] * warm, 1)
        time.sleep(SETTLE)
        if api == "imap_unordered":
            t0, got = run_imap_unordered(pool, ms)
        else:
            t0, got = run_apply_async(pool, ms)
        pool.close()
        pool.join()
    if len(got) != len(ms):
        sys.exit(f"bench_sched.py: {name}/{api}: {len(got)} results of {len(ms)}")
    slow_ms = max(ms)
    span = max(a for _, a, _ in got) - t0
    # By its argument: imap_unordered does not say which input a result
    # answers, and in both scenarios the slow tasks are the longest.
    assert sum(quick) == sum(1 for d in ms if d != slow_ms)
    last_quick = max(a for _, a, v in got if v[0] != slow_ms) - t0
    idle = idle_wait_ns([(s, v[3], v[4]) for s, _, v in got])
    held = max(a - v[4] for _, a, v in got)
    v = f"{name}/{api}/{BACKEND}"
    print(f"{v}/makespan {span / 1e9:.6f} s", flush=True)
    print(f"{v}/last_quick {last_quick / 1e9:.6f} s", flush=True)
    print(f"{v}/idle_wait {idle / 1e9:.6f} s", flush=True)
    print(f"{v}/held {held / 1e9:.6f} s", flush=True)


def main():
    args = sys.argv[1:]
    only = None
    warm = 0
    try:
        if "--only" in args:
            only = args[args.index("--only") + 1].split(",")
        if "--warm" in args:
            warm = int(args[args.index("--warm") + 1])
    except (IndexError, ValueError):
        sys.exit("usage: bench_sched.py [--only NAME,...] [--warm N]")
    mp.set_start_method("fork")

    def want(name, api):
        """--only filters by scenario and api names (bench_sched.c's, the
        backend names are compare_sched.py's business)."""
        if only is None:
            return True
        return all(not any(g in only for g in group) or n in only
                   for n, group in ((name, [s for s, _ in SCENARIOS]),
                                    (api, APIS)))

    for name, make in SCENARIOS:
        ms, quick = make()
        apis = [a for a in APIS if want(name, a)]
        if not apis:
            continue
        span, last_quick = greedy(ms, quick)
        print(f"{name}/greedy/makespan {span:.6f} s", flush=True)
        print(f"{name}/greedy/last_quick {last_quick:.6f} s", flush=True)
        for api in apis:
            run_variant(name, ms, quick, api, warm)


if __name__ == "__main__":
    main()
