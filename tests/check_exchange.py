"""Run docs/examples/queue or docs/examples/pipe and check that it prints
exactly what the Python documentation's example prints, and what Python
itself prints for that list. Usage: check_exchange.py path/to/example"""
import subprocess
import sys

res = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=60)
want = repr([42, None, 'hello']) + "\n"
checks = [
    ("exits 0", res.returncode == 0),
    ("prints exactly [42, None, 'hello']", res.stdout == want),
    ("nothing on stderr", res.stderr == ""),
]
print(f"1..{len(checks)}")
for n, (name, ok) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {n} - {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
