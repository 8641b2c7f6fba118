#!/usr/bin/env python3
"""CPython's side of bench/bench_pickle.c: time pickle.dumps/pickle.loads
on the same data the C benchmark uses.

Usage: bench_pickle.py [--repeat N] [--dump DIR]

Prints one line per measurement: "<case> <op> <median_s> <min_s> <max_s>",
with case in {ints, tuples, bytes16m} and op in {encode, decode}.
With --dump, also writes each case's pickle to DIR/<case>.pickle so that
the C benchmark can decode exactly the bytes Python wrote.
The garbage collector is off while timing, as timeit does, and each
measurement starts with one untimed warm-up call.
"""
import argparse
import gc
import os
import pickle
import statistics
import time

PROTOCOL = 5


def cases():
    yield "ints", list(range(1000000))
    yield "tuples", [(i, i * 0.5, "s%d" % i) for i in range(100000)]
    yield "bytes16m", bytes(16 << 20)


def timed(fn, repeat):
    fn()  # untimed warm-up, as the C side does
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--dump")
    args = ap.parse_args()
    for name, value in cases():
        data = pickle.dumps(value, PROTOCOL)
        if args.dump:
            with open(os.path.join(args.dump, name + ".pickle"), "wb") as f:
                f.write(data)
        gc.disable()
        try:
            enc = timed(lambda: pickle.dumps(value, PROTOCOL), args.repeat)
            dec = timed(lambda: pickle.loads(data), args.repeat)
        finally:
            gc.enable()
        print("%s encode %.9f %.9f %.9f" % ((name,) + enc))
        print("%s decode %.9f %.9f %.9f" % ((name,) + dec), flush=True)


if __name__ == "__main__":
    main()
