"""Python's multiprocessing.Pool on the work of bench_pool.c.

Prints one line per measure, "name value unit", like bench_pool.
Usage: python3 bench/bench_pool.py [--quick]
"""
import multiprocessing as mp
import sys
import time


def empty(x):
    return None


def main():
    quick = "--quick" in sys.argv[1:]
    scale = 10 if quick else 1
    mp.set_start_method("fork")

    n = 200000 // scale
    with mp.Pool(2) as p:
        t0 = time.perf_counter()
        for _ in p.imap(empty, range(n), 1):
            pass
        dt = time.perf_counter() - t0
    print(f"imap_c1 {n / dt:.1f} tasks/s", flush=True)

    n = 1000000 // scale
    with mp.Pool(2) as p:
        t0 = time.perf_counter()
        p.map(empty, range(n))
        dt = time.perf_counter() - t0
    print(f"map_default {n / dt:.1f} tasks/s", flush=True)

    n = 2000 // scale
    with mp.Pool(2) as p:
        for _ in range(10):
            p.apply(empty, (0,))
        t0 = time.perf_counter()
        for _ in range(n):
            p.apply(empty, (0,))
        dt = time.perf_counter() - t0
    print(f"apply_rtt {dt / n * 1e6:.2f} us", flush=True)

    n = max(20 // scale, 3)
    t0 = time.perf_counter()
    for _ in range(n):
        p = mp.Pool(2)
        p.apply(empty, (0,))
        p.close()
        p.join()
    dt = time.perf_counter() - t0
    print(f"open_apply_close {dt / n * 1e3:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
