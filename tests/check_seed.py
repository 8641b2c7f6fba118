"""Run docs/examples/seed and check what it prints: the CPU count, then
0..9 in order from imap, then 0..9 in any order from imap_unordered.
Usage: python3 tests/check_seed.py path/to/seed   (prints TAP)
(or a launcher and its arguments before it: tests/mpi-run.sh mpirun seed)"""
import os
import subprocess
import sys

out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True,
                     timeout=60).stdout.splitlines()
checks = []
checks.append(("header cpu_count", out[0] == "cpu_count"))
checks.append(("cpu count is os.cpu_count()", out[1] == str(os.cpu_count())))
checks.append(("imap header", out[2] == f"imap, {os.cpu_count()} processes"))
checks.append(("imap yields 0..9 in order", out[3:13] == [str(i) for i in range(10)]))
checks.append(("imap_unordered header", out[13] == "imap_unordered, 4 processes"))
checks.append(("imap_unordered yields each of 0..9 once",
               sorted(out[14:24], key=int) == [str(i) for i in range(10)]))
checks.append(("nothing else printed", len(out) == 24))
print(f"1..{len(checks)}")
for i, (name, ok) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
