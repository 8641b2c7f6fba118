"""docs/examples/shared_array: the map over slices of a shared array of
doubles prints one line whose sum, min and max are those of the array, and
agree with the parent's own sum. Small sizes (one of them not a whole
number of slices) are checked against the values computed here; the
default, 1 GiB, against the parent's sum alone (Python would take a minute
to add 134 million numbers).
Usage: python3 tests/check_shared_array.py path/to/shared_array   (TAP)"""
import re
import subprocess
import sys

LINE = re.compile(r"^(\d+) doubles in (\d+) slices: sum (-?\d+), min (-?\d+), "
                  r"max (-?\d+); the parent's sum is the same\n$")


def expect(n):
    """(sum, min, max) of the example's values, computed here."""
    vals = [i * 40503 % 65521 % 2001 - 1000 for i in range(n)]
    return sum(vals), min(vals), max(vals)


checks = []
for arg, nbytes in (("8", 8), ("1000000", 1000000), ("1M", 1 << 20), (None, 1 << 30)):
    p = subprocess.run([sys.argv[1]] + ([arg] if arg else []),
                       capture_output=True, text=True, timeout=300)
    m = LINE.match(p.stdout)
    n = nbytes // 8
    name = f"size {arg or 'default (1 GiB)'}: one line, the parent's sum agrees"
    ok = p.returncode == 0 and m is not None and int(m.group(1)) == n
    checks.append((name, ok, (p.returncode, p.stdout, p.stderr)))
    if ok and arg:
        got = tuple(int(m.group(k)) for k in (3, 4, 5))
        checks.append((f"size {arg}: sum, min and max of the values", got == expect(n), got))
    if ok and n >= 64 * 1024:
        checks.append((f"size {arg or 'default'}: 64 slices", m.group(2) == "64", m.group(2)))
bad = subprocess.run([sys.argv[1], "12X"], capture_output=True, text=True, timeout=60)
checks.append(("a size that is not one is refused", bad.returncode == 2 and "usage" in bad.stderr,
               (bad.returncode, bad.stderr)))
print(f"1..{len(checks)}")
for i, (name, ok, got) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {name}")
    if not ok:
        print(f"# got {got!r}")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
