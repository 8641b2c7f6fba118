"""Python's multiprocessing.Pool and multiprocessing.pool.ThreadPool on the
work of bench_payload.c: imap at chunksize 1 of a bytes argument, the task
returning it (echo) or its length (len).

Usage: python3 bench/bench_payload.py [--contender pool,threadpool]
           [--task echo,len] [--size 1K,64K,1M,16M] [--target SECONDS]
           [--workers N]

Measures as bench_payload does (the pool opened first; untimed batches of
doubling size until one takes 50 ms; then one timed run of as many tasks
as fill --target seconds, at least 4 a worker) and prints the same lines:
"CONTENDER TASK SIZE US_PER_TASK us N". Every task gets the same bytes
object: Pool pickles it into each task, ThreadPool hands over a reference.
"""
import argparse
import itertools
import multiprocessing as mp
import sys
import time
from multiprocessing.pool import ThreadPool

WARM_SECS = 0.05


def echo(b):
    return b


def length(b):
    return len(b)


TASKS = {"echo": echo, "len": length}


def parse_size(s):
    mult = {"K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(s[:-1]) * mult[s[-1]]
    return int(s)


def run(pool, task, payload, n):
    fn = TASKS[task]
    want = payload if task == "echo" else len(payload)
    for r in pool.imap(fn, itertools.repeat(payload, n), 1):
        if task == "len":
            ok = r == want
        else:
            ok = len(r) == len(want) and r[:1] == want[:1] and r[-1:] == want[-1:]
        if not ok:
            raise RuntimeError(f"{task}: a wrong result")


def measure(name, task, size, target, workers):
    payload = bytes((i * 131 + 7) & 0xFF for i in range(256)) * (size // 256) \
        + bytes((i * 131 + 7) & 0xFF for i in range(size % 256))
    cls = mp.Pool if name == "pool" else ThreadPool
    with cls(workers) as pool:
        n = workers
        while True:
            t0 = time.perf_counter()
            run(pool, task, payload, n)
            dt = time.perf_counter() - t0
            if dt >= WARM_SECS:
                break
            n *= 2
        n = max(4 * workers, int(target / (dt / n)))
        t0 = time.perf_counter()
        run(pool, task, payload, n)
        dt = time.perf_counter() - t0
        pool.close()
        pool.join()
    print(f"{name} {task} {size} {dt / n * 1e6:.4f} us {n}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contender", default="pool,threadpool")
    ap.add_argument("--task", default="echo,len")
    ap.add_argument("--size", default="1K,64K,1M,16M")
    ap.add_argument("--target", type=float, default=0.4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    contenders = args.contender.split(",")
    tasks = args.task.split(",")
    for c in contenders:
        if c not in ("pool", "threadpool"):
            sys.exit(f"bench_payload.py: unknown contender {c}")
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"bench_payload.py: unknown task {t}")
    mp.set_start_method("fork")
    for size in map(parse_size, args.size.split(",")):
        for task in tasks:
            for c in contenders:
                measure(c, task, size, args.target, args.workers)


if __name__ == "__main__":
    main()
