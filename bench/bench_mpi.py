"""mpi4py.futures on the work of bench_mpi.c: empty tasks and 10 us tasks
through MPIPoolExecutor.map at chunksize 1 and 64, and submit().result()'s
round trip. Run as
    mpirun --oversubscribe -np 3 python3 -m mpi4py.futures bench/bench_mpi.py
(rank 0 runs this, the other ranks are the executor's workers).
Prints one line per measure, "name value unit", like bench_mpi.
"""
import time

from mpi4py.futures import MPIPoolExecutor


def empty(x):
    return None


def spin10(x):
    end = time.perf_counter() + 10e-6
    while time.perf_counter() < end:
        pass
    return None


def rate(ex, fn, n, chunk):
    t0 = time.perf_counter()
    for _ in ex.map(fn, range(n), chunksize=chunk):
        pass
    return n / (time.perf_counter() - t0)


def main():
    with MPIPoolExecutor() as ex:
        ex.submit(empty, 0).result()  # workers up
        for name, fn, n, chunk in (("empty_c1", empty, 2000, 1),
                                   ("empty_c64", empty, 100000, 64),
                                   ("spin10_c1", spin10, 2000, 1),
                                   ("spin10_c64", spin10, 50000, 64)):
            print(f"{name} {rate(ex, fn, n, chunk):.1f} tasks/s", flush=True)
        for _ in range(20):
            ex.submit(empty, 0).result()
        n = 500
        t0 = time.perf_counter()
        for _ in range(n):
            ex.submit(empty, 0).result()
        print(f"apply_rtt {(time.perf_counter() - t0) / n * 1e6:.2f} us",
              flush=True)


if __name__ == "__main__":
    main()
