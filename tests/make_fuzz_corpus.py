#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz_pickle.c: small pickles, as CPython
writes them at protocols 2 to 5, of every type the decoder reads, plus a
few it must refuse (a class instance, a global function).

Usage: tests/make_fuzz_corpus.py [DIR]   (default: tests/fuzz-corpus)
The output is deterministic, so the committed corpus can be regenerated.
"""
import collections
import os
import pickle
import sys

shared = [1, 2]
VALUES = {
    "none": None,
    "bools": (True, False),
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31,
             2**31, -2**31 - 1, 2**63 - 1, -2**63],
    "bigint": 2**64,
    "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan")],
    "strs": ["", "a", "h\u00e9\u20ac\U0001F600", "x" * 300],
    "bytes": [b"", b"\x00\xff", b"y" * 300],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4, 5)],
    "dict": {"a": 1, 2: "b", (3, "c"): [4.5, None], "n": {}},
    "sets": [set(), {1, 2, 3}, frozenset(), frozenset({(1, 2), "x"})],
    "shared": [shared, shared, (shared,)],
    "nested": [[[[[[1]]]]], {"k": ({"v": [()]},)}],
    "mixed": {"id": 7, "vals": [(i, i * 0.5, "s%d" % i) for i in range(20)]},
}


class Thing:
    pass


def main():
    # str hashes are salted per process; set order must not be.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fuzz-corpus")
    os.makedirs(out, exist_ok=True)
    for proto in (2, 3, 4, 5):
        for name, value in VALUES.items():
            with open(os.path.join(out, "p%d-%s.pickle" % (proto, name)),
                      "wb") as f:
                f.write(pickle.dumps(value, proto))
    # Out-of-band buffers (the fuzzer decodes every input with a few
    # buffers too) and in-band PickleBuffers (BYTEARRAY8).
    PB = pickle.PickleBuffer
    oob = {"buffers": [PB(b"ro"), {"k": PB(bytearray(b"rw"))}, (PB(b""),)],
           "buffers-memo": [shared, PB(b"x"), shared],
           "bytearray": [PB(bytearray(b"in band")), bytearray(300)]}
    for name, value in oob.items():
        with open(os.path.join(out, "p5-%s.pickle" % name), "wb") as f:
            f.write(pickle.dumps(value, 5, buffer_callback=(
                None if name == "bytearray" else lambda b: False)))
    for proto in (2, 4):
        refused = {"instance": Thing(), "global": os.system,
                   "ordereddict": collections.OrderedDict(a=1)}
        for name, value in refused.items():
            with open(os.path.join(out, "p%d-refused-%s.pickle" %
                                   (proto, name)), "wb") as f:
                f.write(pickle.dumps(value, proto))


if __name__ == "__main__":
    main()
