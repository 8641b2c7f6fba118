#!/usr/bin/env python3
"""Python's side of mproc-bench (bench/mproc_bench.c): the same points on
multiprocessing.Pool and multiprocessing.pool.ThreadPool.

Usage: mproc_bench.py --repeat N --backends py-pool,py-threadpool

The C tool drives it point by point, one line on stdin each,
"P i:task:api:workers:chunksize:task_ns:payload:n:warm:startup"; EOF ends
it. For each backend, the script opens a pool of `workers`, runs `warm`
untimed tasks, times `repeat` runs of `n` tasks and closes the pool, then
prints "R i backend median min max" (seconds) on stdout, or
"E i backend message" when the point failed; "D i" ends the point's
answer. Pools live only for their point, so no pool's threads are alive
when the next one forks. Exit status 3: multiprocessing cannot run here.

A sched point (the work-conservation workload), "S i:scenario:api:workers:
runs", runs bench_sched.py's scenario (mixed or slow-first: tasks that
sleep) through imap_unordered or apply_async `runs` times on each backend,
each run on a fresh pool settled 100 ms, no warm-up, as bench_sched.py
does; it answers "G i greedy makespan last_quick" (the greedy schedule of
its own task list, which the C side checks against its own), then
"R i backend median min max qmedian qmin qmax" per backend: the makespan
and the last quick task's arrival, in seconds from just before the first
submission.

The spin task busy-waits on time.perf_counter_ns() for task_ns of wall
time: Python cannot run the C spin loop at the same cost. The empty task
returns None; the payload task (echo) returns its bytes argument itself
(a ThreadPool hands back the reference, as mproc's echo re-emits its
argument, by reference where its pool moves big bytes out of band); the
len task returns the argument's length.
"""
import argparse
import itertools
import statistics
import sys
import time

try:
    import multiprocessing as mp
    from multiprocessing.pool import ThreadPool
except ImportError as e:  # a python built without _multiprocessing
    print(f"mproc_bench.py: {e}", file=sys.stderr)
    sys.exit(3)


def empty(x):
    return None


def spin(ns):
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


def echo(b):
    return b


def length(b):
    return len(b)


class Point:
    def __init__(self, spec):
        f = spec.split(":")
        self.id = int(f[0])
        self.task = f[1]
        self.api = f[2]
        self.workers = int(f[3])
        self.chunksize = int(f[4])
        self.task_ns = int(f[5])
        self.payload = int(f[6])
        self.n = int(f[7])
        self.warm = int(f[8])
        self.startup = f[9] == "1"

    def work(self, n):
        """The task function and an iterable of its n arguments."""
        if self.task == "spin":
            return spin, itertools.repeat(self.task_ns, n)
        if self.task == "payload":
            return echo, itertools.repeat(bytes(self.payload), n)
        if self.task == "len":
            return length, itertools.repeat(bytes(self.payload), n)
        if self.task != "empty":
            raise ValueError(f"unknown task {self.task}")
        return empty, range(n)


def run_calls(pool, pt, n):
    fn, args = pt.work(n)
    if pt.api == "map":
        pool.map(fn, args, pt.chunksize)
    elif pt.api == "apply_async":
        rs = [pool.apply_async(fn, (a,)) for a in args]
        for r in rs:
            r.get()
    else:
        call = pool.imap if pt.api == "imap" else pool.imap_unordered
        for _ in call(fn, args, pt.chunksize):
            pass


def run_startup(cls, pt, n):
    for _ in range(n):
        p = cls(pt.workers)
        p.apply(empty, (0,))
        p.close()
        p.join()


def measure(cls, pt, repeat):
    if pt.startup:
        run_startup(cls, pt, pt.warm)
        pool = None
    else:
        pool = cls(pt.workers)
    try:
        if pool is not None and pt.warm:
            run_calls(pool, pt, pt.warm)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            if pt.startup:
                run_startup(cls, pt, pt.n)
            else:
                run_calls(pool, pt, pt.n)
            times.append(time.perf_counter() - t0)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return statistics.median(times), min(times), max(times)


def measure_sched(cls, spec, runs):
    """(makespan, last quick arrival) stats over `runs` runs of a
    bench_sched.py scenario, each on a fresh pool."""
    import bench_sched as bs
    ms, _quick = dict(bs.SCENARIOS)[spec.scenario]()
    slow_ms = max(ms)
    spans, quicks = [], []
    for _ in range(runs):
        with cls(spec.workers) as pool:
            time.sleep(bs.SETTLE)
            run = (bs.run_imap_unordered if spec.api == "imap_unordered"
                   else bs.run_apply_async)
            t0, got = run(pool, ms)
            pool.close()
            pool.join()
        if len(got) != len(ms) or any(g is None for g in got):
            raise RuntimeError(f"{len(got)} results of {len(ms)}")
        # By its argument, as bench_sched.py: the slow tasks are the
        # longest, and imap_unordered does not say which input a result
        # answers.
        spans.append((max(a for _, a, _ in got) - t0) / 1e9)
        quicks.append((max(a for _, a, v in got if v[0] != slow_ms) - t0)
                      / 1e9)
    return ((statistics.median(spans), min(spans), max(spans)),
            (statistics.median(quicks), min(quicks), max(quicks)))


class SchedPoint:
    def __init__(self, spec):
        f = spec.split(":")
        self.id = int(f[0])
        self.scenario = f[1]
        self.api = f[2]
        self.workers = int(f[3])
        self.runs = int(f[4])


def sched_point(line, backends, classes):
    sp = SchedPoint(line[2:].strip())
    try:
        import bench_sched as bs
        if sp.workers != bs.WORKERS:
            raise ValueError(f"{sp.workers} workers: the scenarios are "
                             f"made for {bs.WORKERS}")
        ms, quick = dict(bs.SCENARIOS)[sp.scenario]()
        span, last_quick = bs.greedy(ms, quick)
        print(f"G {sp.id} greedy {span:.6f} {last_quick:.6f}", flush=True)
    except Exception as e:  # no bench_sched.py: every backend fails
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")
        for name in backends:
            print(f"E {sp.id} {name} {msg}", flush=True)
        print(f"D {sp.id}", flush=True)
        return
    for name in backends:
        try:
            s, q = measure_sched(classes[name], sp, sp.runs)
            print(f"R {sp.id} {name} {s[0]:.9f} {s[1]:.9f} {s[2]:.9f} "
                  f"{q[0]:.9f} {q[1]:.9f} {q[2]:.9f}", flush=True)
        except Exception as e:  # report the point, go on
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")
            print(f"E {sp.id} {name} {msg}", flush=True)
    print(f"D {sp.id}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backends", default="py-pool,py-threadpool")
    args = ap.parse_args()
    try:
        mp.set_start_method("fork")
    except (RuntimeError, ValueError) as e:
        print(f"mproc_bench.py: {e}", file=sys.stderr)
        sys.exit(3)
    classes = {"py-pool": mp.Pool, "py-threadpool": ThreadPool}
    backends = [b for b in ("py-pool", "py-threadpool")
                if b in args.backends.split(",")]
    for line in sys.stdin:
        if line.startswith("S "):
            sched_point(line, backends, classes)
            continue
        if not line.startswith("P "):
            continue
        pt = Point(line[2:].strip())
        for name in backends:
            try:
                med, lo, hi = measure(classes[name], pt, args.repeat)
                print(f"R {pt.id} {name} {med:.9f} {lo:.9f} {hi:.9f}",
                      flush=True)
            except Exception as e:  # report the point, go on
                msg = f"{type(e).__name__}: {e}".replace("\n", " ")
                print(f"E {pt.id} {name} {msg}", flush=True)
        print(f"D {pt.id}", flush=True)


if __name__ == "__main__":
    main()
