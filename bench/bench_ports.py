"""Python's multiprocessing on the work bench_ports.c measures: Queue
put/get of small ints between two processes (throughput and one-way
latency), a Pipe round trip, Lock acquire/release uncontended and
contended, Process start+join. Fork start method, as mproc's, and
Process start+join again with the forkserver start method.
Prints "name value unit" lines.  Usage: python3 bench_ports.py [--quick]"""
import multiprocessing as mp
import sys
import time

QUICK = "--quick" in sys.argv
N_ITEMS = 20000 if QUICK else 50000
N_RTT = 2000 if QUICK else 5000
N_LOCK = 100000 if QUICK else 300000
N_CONTEND = 5000 if QUICK else 30000
N_PROC = 20 if QUICK else 100
ctx = mp.get_context("fork")


def produce(q, n):
    for i in range(n):
        q.put(i)


def echo_queue(q1, q2, n):
    for _ in range(n):
        q2.put(q1.get())


def echo_conn(c, n):
    for _ in range(n):
        c.send(c.recv())


def contend(lock, counter, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def empty():
    pass


def main():
    q = ctx.Queue()
    p = ctx.Process(target=produce, args=(q, N_ITEMS))
    p.start()
    t0 = time.perf_counter()
    for i in range(N_ITEMS):
        assert q.get() == i
    dt = time.perf_counter() - t0
    p.join()
    print(f"queue_items_per_s {N_ITEMS / dt:.0f} items/s")

    q1, q2 = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=echo_queue, args=(q1, q2, N_RTT))
    p.start()
    t0 = time.perf_counter()
    for i in range(N_RTT):
        q1.put(i)
        assert q2.get() == i
    dt = time.perf_counter() - t0
    p.join()
    print(f"queue_latency_us {dt / N_RTT / 2 * 1e6:.2f} us")

    a, b = ctx.Pipe()
    p = ctx.Process(target=echo_conn, args=(b, N_RTT))
    p.start()
    t0 = time.perf_counter()
    for i in range(N_RTT):
        a.send(i)
        assert a.recv() == i
    dt = time.perf_counter() - t0
    p.join()
    print(f"conn_rtt_us {dt / N_RTT * 1e6:.2f} us")

    lock = ctx.Lock()
    t0 = time.perf_counter()
    for _ in range(N_LOCK):
        lock.acquire()
        lock.release()
    dt = time.perf_counter() - t0
    print(f"lock_uncontended_ns {dt / N_LOCK * 1e9:.1f} ns")

    counter = ctx.Value("q", 0, lock=False)
    t0 = time.perf_counter()
    ps = [ctx.Process(target=contend, args=(lock, counter, N_CONTEND))
          for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt = time.perf_counter() - t0
    assert counter.value == 2 * N_CONTEND
    print(f"lock_contended_ns {dt / (2 * N_CONTEND) * 1e9:.1f} ns")

    t0 = time.perf_counter()
    for _ in range(N_PROC):
        p = ctx.Process(target=empty)
        p.start()
        p.join()
    dt = time.perf_counter() - t0
    print(f"process_start_join_us {dt / N_PROC * 1e6:.1f} us")

    # The forkserver start method: its server started (by a first Process)
    # before the clock, as in bench_ports.c.
    fs = mp.get_context("forkserver")
    p = fs.Process(target=empty)
    p.start()
    p.join()
    t0 = time.perf_counter()
    for _ in range(N_PROC):
        p = fs.Process(target=empty)
        p.start()
        p.join()
    dt = time.perf_counter() - t0
    print(f"process_forkserver_start_join_us {dt / N_PROC * 1e6:.1f} us")


if __name__ == "__main__":
    main()
