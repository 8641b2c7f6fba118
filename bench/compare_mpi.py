"""mproc over MPI ranks against mpi4py.futures, and against mproc's local
process pool, measured in alternation in one run (this machine's speed
drifts by minutes: docs/benchmarks.md). Each round runs the three, in a
rotating order, on the same work (bench_mpi.c, bench_mpi.py); each ratio
is taken within a round, and the median, min and max over the rounds are
printed.

Usage: python3 bench/compare_mpi.py BUILD_DIR [ROUNDS]
  mproc-mpi    MPROC_BACKEND=mpi mpirun -np 3 BUILD/bench/bench_mpi --workers 2
  mpi4py       mpirun -np 3 /usr/bin/python3 -m mpi4py.futures bench/bench_mpi.py
               ($MPROC_PYTHON: another Python with mpi4py)
  mproc-local  BUILD/bench/bench_mpi --workers 2
Both MPI jobs have 2 workers on ranks 1 and 2, rank 0 submitting.
"""
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Debian's python3-mpi4py is in the system's Python ($MPROC_PYTHON: another)
PY = os.environ.get("MPROC_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3")


def run(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True,
                         text=True, timeout=600).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            vals[parts[0]] = float(parts[1])
    return vals


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_btl_tcp_if_include="lo")
    env.pop("MPROC_BACKEND", None)
    mpirun = ["mpirun", "--oversubscribe", "-np", "3"]
    exe = os.path.join(build, "bench", "bench_mpi")
    who = {
        "mproc-mpi": (mpirun + [exe, "--workers", "2"],
                      dict(env, MPROC_BACKEND="mpi")),
        "mpi4py": (mpirun + [PY, "-m", "mpi4py.futures",
                             os.path.join(HERE, "bench_mpi.py")], env),
        "mproc-local": ([exe, "--workers", "2"], env),
    }
    names = list(who)
    got = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % 3:] + names[:r % 3]
        for n in order:
            got[n].append(run(*who[n]))
        print(f"round {r + 1}: " + "; ".join(
            f"{n} " + " ".join(f"{k}={v:g}" for k, v in got[n][-1].items())
            for n in names), flush=True)

    def ratios(f):
        return [f(i) for i in range(rounds)]

    def show(label, xs):
        print(f"{label:48s} median {statistics.median(xs):8.2f}  "
              f"min {min(xs):8.2f}  max {max(xs):8.2f}")

    print(f"\n{rounds} rounds; ratio per round, then median/min/max")
    for k in ("empty_c1", "empty_c64", "spin10_c1", "spin10_c64"):
        show(f"{k}: tasks/s mproc-mpi / mpi4py",
             ratios(lambda i: got["mproc-mpi"][i][k] / got["mpi4py"][i][k]))
    show("apply_rtt: mpi4py / mproc-mpi (higher: mproc faster)",
         ratios(lambda i: got["mpi4py"][i]["apply_rtt"] /
                got["mproc-mpi"][i]["apply_rtt"]))
    for k in ("empty_c64", "spin10_c64"):
        show(f"{k}: tasks/s mproc-local / mproc-mpi",
             ratios(lambda i: got["mproc-local"][i][k] / got["mproc-mpi"][i][k]))
    for n in names:
        for k in ("empty_c1", "empty_c64", "spin10_c1", "spin10_c64", "apply_rtt"):
            xs = [g[k] for g in got[n]]
            unit = "us" if k == "apply_rtt" else "tasks/s"
            print(f"  {n:12s} {k:11s} median {statistics.median(xs):12.1f} {unit}"
                  f" (min {min(xs):.1f}, max {max(xs):.1f})")


if __name__ == "__main__":
    main()
