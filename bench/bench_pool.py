"""Python's multiprocessing.Pool on the work of bench_pool.c.

Prints one line per measure, "name value unit", like bench_pool.
Usage: python3 bench/bench_pool.py [--quick] [--only NAME,...]
"""
import multiprocessing as mp
import sys
import time


def empty(x):
    return None


def imap_c1(n):
    with mp.Pool(2) as p:
        t0 = time.perf_counter()
        for _ in p.imap(empty, range(n), 1):
            pass
        dt = time.perf_counter() - t0
    print(f"imap_c1 {n / dt:.1f} tasks/s", flush=True)


def map_default(n):
    with mp.Pool(2) as p:
        t0 = time.perf_counter()
        p.map(empty, range(n))
        dt = time.perf_counter() - t0
    print(f"map_default {n / dt:.1f} tasks/s", flush=True)


def apply_rtt(n):
    with mp.Pool(2) as p:
        for _ in range(10):
            p.apply(empty, (0,))
        t0 = time.perf_counter()
        for _ in range(n):
            p.apply(empty, (0,))
        dt = time.perf_counter() - t0
    print(f"apply_rtt {dt / n * 1e6:.2f} us", flush=True)


def open_apply_close(n):
    t0 = time.perf_counter()
    for _ in range(n):
        p = mp.Pool(2)
        p.apply(empty, (0,))
        p.close()
        p.join()
    dt = time.perf_counter() - t0
    print(f"open_apply_close {dt / n * 1e3:.3f} ms", flush=True)


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    only = None
    if "--only" in args:
        if args.index("--only") + 1 >= len(args):
            sys.exit("usage: bench_pool.py [--quick] [--only NAME,...]")
        only = args[args.index("--only") + 1].split(",")
    scale = 10 if quick else 1
    mp.set_start_method("fork")
    measures = [
        (imap_c1, 200000 // scale),
        (map_default, 1000000 // scale),
        (apply_rtt, 2000 // scale),
        (open_apply_close, max(20 // scale, 3)),
    ]
    for fn, n in measures:
        if only is None or fn.__name__ in only:
            fn(n)


if __name__ == "__main__":
    main()
