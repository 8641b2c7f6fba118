"""Run docs/examples/crash and check one line per index with the status its
input calls for, then the statistics. Usage: check_crash.py path/to/crash
(or a launcher and its arguments before it: tests/mpi-run.sh mpirun crash)"""
import subprocess
import sys

out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True,
                     timeout=60).stdout.splitlines()
expect = {i: "OK" for i in range(20)}
expect.update({3: "CRASHED", 11: "CRASHED", 17: "CRASHED", 7: "CRASHED",
               13: "CRASHED", 5: "TIMEOUT"})
checks = []
for i in range(20):
    fields = out[i].split()
    checks.append((f"index {i} is {expect[i]}",
                   fields[0] == str(i) and fields[1] == expect[i]))
checks.append(("index 3 names SIGSEGV", "SIGSEGV" in out[3]))
checks.append(("index 7 names SIGABRT", "SIGABRT" in out[7]))
checks.append(("index 13 gives the exit status", "status 2" in out[13]))
checks.append(("OK values are squares", out[4].split()[2] == "16"))
checks.append(("a backtrace follows", any(l.startswith("#0 ") for l in out)))
checks.append(("statistics line", any(l.startswith("tasks 20: ok 14, raised 0, crashed 5, timed out 1")
                                      for l in out)))
print(f"1..{len(checks)}")
for n, (name, ok) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {n} - {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
