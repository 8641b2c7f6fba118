"""Python in, C compute, Python out: pickle a list with CPython, run
docs/examples/roundtrip on it, and load what it writes with CPython.
Usage: python3 tests/check_roundtrip.py path/to/roundtrip   (prints TAP)"""
import pickle
import subprocess
import sys

checks = []
for protocol in (2, 3, 4, 5):
    items = ["one two three", "", "  spaced   out ", 7, "ünïcode wörds"]
    out = subprocess.run([sys.argv[1]], input=pickle.dumps(items, protocol),
                         check=True, capture_output=True, timeout=60).stdout
    try:
        got = pickle.loads(out)
    except Exception as e:  # noqa: BLE001 - report, not raise
        got = repr(e)
    want = [{"text": "one two three", "words": 3},
            {"text": "", "words": 0},
            {"text": "  spaced   out ", "words": 2},
            ("TypeError", 'format "s", the value: expected str, got int'),
            {"text": "ünïcode wörds", "words": 2}]
    checks.append((f"protocol {protocol}: results load in Python as map's list",
                   got == want, got))
# A tuple of items, a set and a dict (its keys) are inputs too.
for name, items, want_len in (("tuple", ("a", "b c"), 2), ("dict keys", {"x y": 1}, 1)):
    got = pickle.loads(subprocess.run([sys.argv[1]], input=pickle.dumps(items),
                                      check=True, capture_output=True,
                                      timeout=60).stdout)
    checks.append((f"a {name} is an input", len(got) == want_len, got))
bad = subprocess.run([sys.argv[1]], input=pickle.dumps(3), capture_output=True,
                     timeout=60)
checks.append(("a scalar is refused, named", bad.returncode == 1 and
               b"expected tuple, list, dict, set or frozenset, got int" in bad.stderr,
               bad.stderr))
print(f"1..{len(checks)}")
for i, (name, ok, got) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {name}")
    if not ok:
        print(f"# got {got!r}")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
