"""mproc-run's overhead per input against GNU parallel running a tiny
command per line, in alternating rounds: each round times mproc-run over
M lines (docs/examples/parser.so's parse, -j 2, output to /dev/null) and
`parallel -j 2 echo` over P lines, and prints the time per input of each
and their ratio; then the median, min and max.

  python3 bench/bench_mproc_run.py build/tools/mproc-run \
      build/docs/examples/parser.so [ROUNDS] [M] [P]

Defaults: 5 rounds, M = 100000, P = 1000. Needs Debian's `parallel`.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

run, so = sys.argv[1], os.path.abspath(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
m = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
p = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
if not shutil.which("parallel"):
    sys.exit("bench_mproc_run: GNU parallel is not installed (apt-get install parallel)")
tmp = tempfile.mkdtemp(prefix="bench-mproc-run-")
lines = [f"p{i},{i % 90}" for i in range(max(m, p))]
mfile, pfile = os.path.join(tmp, "m.txt"), os.path.join(tmp, "p.txt")
with open(mfile, "w") as f:
    f.write("\n".join(lines[:m]) + "\n")
with open(pfile, "w") as f:
    f.write("\n".join(lines[:p]) + "\n")


def timed(cmd, stdin=None):
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        subprocess.run(cmd, stdin=stdin, stdout=null, check=True)
    return time.monotonic() - t0


def mproc():
    return timed([run, "-j", "2", f"{so}:parse", mfile]) / m * 1e6


def gnu():
    with open(pfile) as f:
        return timed(["parallel", "--will-cite", "-j", "2", "echo"], stdin=f) / p * 1e6


mp, gp, ratio = [], [], []
print(f"bench_mproc_run: {rounds} rounds; mproc-run over {m} lines, "
      f"parallel over {p} lines; microseconds per input")
for r in range(rounds):
    if r % 2:
        g = gnu(); x = mproc()
    else:
        x = mproc(); g = gnu()
    mp.append(x); gp.append(g); ratio.append(g / x)
    print(f"  round {r + 1}: mproc-run {x:8.2f} us  parallel {g:9.1f} us  "
          f"ratio {g / x:7.1f}x")
for name, v, unit in (("mproc-run per input", mp, " us"),
                      ("parallel per input", gp, " us"),
                      ("parallel / mproc-run", ratio, "x")):
    print(f"  {name:22s} median {statistics.median(v):9.2f}{unit}  "
          f"min {min(v):9.2f}{unit}  max {max(v):9.2f}{unit}")
shutil.rmtree(tmp)
