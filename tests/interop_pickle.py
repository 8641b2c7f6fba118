#!/usr/bin/env python3
"""Interop of mproc's pickle codec with CPython's pickle module.

Usage: interop_pickle.py PATH/TO/pickle_roundtrip [COUNT]

1. COUNT (default 3000) seeded random nested values are pickled by Python
   at each protocol 2-5, decoded and re-encoded by C, loaded back by Python
   and compared type-exactly (NaN-aware, sign of -0.0 checked). A value
   holding an int beyond 64 bits must come back as an INTRANGE error.
2. Values written by C's writer calls are loaded by Python and compared.
3. Pickles of things outside the safe subset must come back as errors
   naming the opcode and its offset.
4. The globals the decoder accepts (_codecs.encode, bytes, set, frozenset
   in their __builtin__ and builtins spellings), with no PROTO and at each
   protocol 0-5: C must accept exactly what pickle.loads accepts and build
   the same value.
5. Out-of-band buffers (protocol 5, PEP 574), both ways: what
   pickle.dumps(..., buffer_callback=...) writes for PickleBuffers of bytes
   and bytearray, nested in lists, dicts and tuples, decodes in C with its
   buffers (each value from the buffer it names, read-only as Python
   wrote it) and, re-encoded by C, loads in Python with the buffers C
   lists; C's own buffers (copies, references, reservations, writable,
   the threshold) load with pickle.loads(data, buffers=...); in-band
   PickleBuffers (BYTEARRAY8) read as bytes; too few buffers fail on both
   sides.

Prints a TAP stream (one test per check group); exits nonzero on failure.
Deterministic: a fixed seed.
"""
import collections
import math
import os
import pickle
import random
import struct
import subprocess
import sys

SEED = 20240611

INT_EDGES = [0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31,
             -2**31, -2**31 - 1, 2**32, 2**40, -2**40, 2**62, 2**63 - 1,
             -2**63, -2**63 + 1]
BIG_INTS = [2**63, -2**63 - 1, 2**64, -2**64, 2**100, -2**200]
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.5, 1e300, -1e-300, 5e-324,
               float("inf"), float("-inf"), float("nan"), math.pi]
STR_EDGES = ["", "a", "h\u00e9llo", "\u20ac", "\U0001F600", "\x00",
             "x" * 300, "\u00ff\u0100", "line\nbreak"]
BYTES_EDGES = [b"", b"\x00", b"\xff" * 3, bytes(range(256)), b"z" * 300]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.shared = []

    def scalar(self, allow_big):
        r = self.r
        k = r.randrange(10)
        if k == 0:
            return None
        if k == 1:
            return r.random() < 0.5
        if k == 2:
            if allow_big and r.random() < 0.1:
                return r.choice(BIG_INTS)
            return r.choice(INT_EDGES)
        if k == 3:
            return r.randrange(-2**63, 2**63)
        if k == 4:
            return r.randrange(-1000, 70000)
        if k == 5:
            return r.choice(FLOAT_EDGES)
        if k == 6:
            return r.uniform(-1e6, 1e6)
        if k == 7:
            return r.choice(STR_EDGES)
        if k == 8:
            return "".join(chr(r.choice([r.randrange(32, 127),
                                         r.randrange(0xa0, 0xd7ff),
                                         r.randrange(0xe000, 0x10ffff)]))
                           for _ in range(r.randrange(0, 12)))
        return r.choice(BYTES_EDGES)

    def hashable(self, depth):
        """Dict keys and set items: no float/bool (1 == 1.0 == True would
        merge items and make type-exact comparison meaningless)."""
        r = self.r
        k = r.randrange(6)
        if k == 0:
            return r.choice(INT_EDGES)
        if k == 1:
            return r.choice(STR_EDGES) + str(r.randrange(100))
        if k == 2:
            return r.choice(BYTES_EDGES)[:5] + bytes([r.randrange(256)])
        if k == 3 and depth > 0:
            return tuple(self.hashable(depth - 1)
                         for _ in range(r.randrange(0, 4)))
        if k == 4 and depth > 0:
            return frozenset(self.hashable(depth - 1)
                             for _ in range(r.randrange(0, 3)))
        return None

    def value(self, depth, allow_big=True):
        r = self.r
        if depth <= 0 or r.random() < 0.35:
            return self.scalar(allow_big)
        k = r.randrange(8)
        if k == 0:
            return tuple(self.value(depth - 1, allow_big)
                         for _ in range(r.randrange(0, 6)))
        if k == 1:
            return [self.value(depth - 1, allow_big)
                    for _ in range(r.randrange(0, 8))]
        if k == 2:
            d = {}
            for _ in range(r.randrange(0, 6)):
                d[self.hashable(2)] = self.value(depth - 1, allow_big)
            return d
        if k == 3:
            return {self.hashable(2) for _ in range(r.randrange(0, 6))}
        if k == 4:
            return frozenset(self.hashable(2)
                             for _ in range(r.randrange(0, 6)))
        if k == 5:
            # shared sub-objects: Python writes memo references to them
            if self.shared and r.random() < 0.7:
                return r.choice(self.shared)
            s = r.choice([[self.scalar(False), "shared"],
                          (self.scalar(False), [1, 2]),
                          {"s": [None]}])
            self.shared.append(s)
            if len(self.shared) > 20:
                self.shared.pop(0)
            return s
        if k == 6:
            # a list of many items: several APPENDS batches
            return [r.randrange(1000) for _ in range(r.randrange(0, 2500))]
        return [self.scalar(allow_big) for _ in range(r.randrange(1, 4))]


def has_big(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return not -2**63 <= v < 2**63
    if isinstance(v, dict):
        return any(has_big(k) or has_big(x) for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(has_big(x) for x in v)
    return False


def same(a, b):
    """Type-exact deep equality; NaN equals NaN; -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(k1, k2) and same(v1, v2)
            for (k1, v1), (k2, v2) in zip(a.items(), b.items()))
    if isinstance(a, (set, frozenset)):
        return sorted(map(canon, a)) == sorted(map(canon, b))
    return a == b


def canon(x):
    """A type-exact text for a hashable value, the same whatever order
    its (nested) sets were built in."""
    if isinstance(x, tuple):
        return "(" + ",".join(map(canon, x)) + ")"
    if isinstance(x, frozenset):
        return "frozenset{" + ",".join(sorted(map(canon, x))) + "}"
    return type(x).__name__ + ":" + repr(x)


def short(x, n=300):
    r = repr(x)
    return r if len(r) <= n else r[:n] + "..."


def frames_in(data):
    out = []
    i = 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        i += 4
        out.append((data[i:i + 1], data[i + 1:i + n]))
        i += n
    return out


def run(prog, args, frames):
    payload = b"".join(struct.pack("<I", len(f)) + f for f in frames)
    p = subprocess.run([prog] + args, input=payload, stdout=subprocess.PIPE,
                       check=True)
    return frames_in(p.stdout)


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, name, detail=""):
        self.n += 1
        if not ok:
            self.failed += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, name))
        if not ok and detail:
            for line in detail.splitlines():
                print("# " + line)
        sys.stdout.flush()


def random_roundtrips(tap, prog, count):
    gen = Gen(SEED)
    values = [gen.value(4) for _ in range(count)]
    # edge cases that must be there whatever the seed does
    values += [[], (), {}, set(), frozenset(), "", b"", -0.0,
               float("nan"), 2**63, -2**63 - 1, [[], [[]]], (1, 2, 3, 4, 5),
               {(1, "a"): 1, 2: (3,)}, 2**63 - 1, -2**63]
    for proto in (2, 3, 4, 5):
        frames = [pickle.dumps(v, proto) for v in values]
        back = run(prog, [], frames)
        bad = []
        memo_refs = 0
        for v, f, (st, body) in zip(values, frames, back):
            if b"h" in f or b"j" in f:
                memo_refs += 1
            if has_big(v):
                if st != b"E" or b"MPROC_EPICKLE_INTRANGE" not in body:
                    bad.append("%r: want INTRANGE, got %r %r" %
                               (v, st, body[:100]))
                continue
            if st != b"P":
                bad.append("%s: %s" % (short(v),
                                       body.decode(errors="replace")))
                continue
            got = pickle.loads(body)
            if not same(v, got):
                bad.append("%s\n  came back as %s" % (short(v), short(got)))
        ok = len(back) == len(values) and not bad
        tap.check(ok, "protocol %d: %d random values round-trip through C"
                  % (proto, len(values)), "\n".join(bad[:5]))
        tap.check(memo_refs > 0, "protocol %d: some values used memo "
                  "references (%d)" % (proto, memo_refs))


NAN = float("nan")
C_WRITTEN = [
    [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31,
     -2**31 - 1, 2**40, 2**63 - 1, -2**63, None, True, False, 1.5, -0.0,
     float("inf"), float("-inf"), NAN],
    ("", "h\u00e9\u20ac\U0001F600", b"", b"\x00\xff", "q" * 300,
     b"q" * 70000),
    [(), (0,), (0, 1), (0, 1, 2), (0, 1, 2, 3), (0, 1, 2, 3, 4),
     (b"b" * 1000,)],
    {"a": 1, 2: [], (3, "c", frozenset({4})): {}, None: {5, "x", (6,)}},
    ([], {}, set(), frozenset(), ()),
    None,  # 500 nested lists around 7, built below
    list(range(100000)),
    ("ValueError", "bad value 42: ?!"),
]
deep = 7
for _ in range(500):
    deep = [deep]
C_WRITTEN[5] = deep


def c_written(tap, prog):
    out = run(prog, ["--write"], [])
    tap.check(len(out) == len(C_WRITTEN), "C writer made %d values"
              % len(C_WRITTEN))
    for i, (want, (st, body)) in enumerate(zip(C_WRITTEN, out)):
        if st != b"P":
            tap.check(False, "C-written value %d" % i, body.decode())
            continue
        got = pickle.loads(body)
        tap.check(same(want, got), "C-written value %d loads in Python "
                  "(protocol %d)" % (i, body[1]),
                  "%s\n  vs %s" % (short(got), short(want))
                  if not same(want, got) else "")


class Thing:
    pass


class Reducer:
    def __reduce__(self):
        return (os.system, ("true",))


def refused(tap, prog):
    cases = []
    for proto in (2, 3, 4, 5):
        want_global = "GLOBAL" if proto < 4 else "STACK_GLOBAL"
        cases += [
            (pickle.dumps(Thing(), proto), want_global, proto, "instance"),
            (pickle.dumps(os.system, proto), want_global, proto,
             "os.system"),
            (pickle.dumps(Reducer(), proto), want_global, proto,
             "os.system reducer"),
            (pickle.dumps(collections.OrderedDict(a=1), proto), want_global,
             proto, "OrderedDict"),
            (pickle.dumps(complex(1, 2), proto), want_global, proto,
             "complex"),
        ]
    cases += [
        # BYTEARRAY8 reads as bytes (section 5); protocol 2 writes a call
        (pickle.dumps(bytearray(b"ab"), 2), "GLOBAL", 2, "bytearray"),
        (pickle.dumps([1, "a"], 0), "LIST", 0, "protocol 0"),
        (pickle.dumps(1, 0), "INT", 0, "protocol 0 int"),
        (pickle.dumps(3.5, 1), None, 1, "protocol 1 float (BINFLOAT ok)"),
        (b"\x80\x04\x82\x01.", "EXT1", 4, "EXT1"),
        (b"\x80\x04N\x81.", "NEWOBJ", 4, "NEWOBJ"),
        (b"\x80\x02Pabc\n.", "PERSID", 2, "PERSID"),
    ]
    out = run(prog, [], [c[0] for c in cases])
    for (data, opname, proto, what), (st, body) in zip(cases, out):
        text = body.decode(errors="replace")
        if opname is None:
            tap.check(st == b"P", "%s decodes" % what, text)
            continue
        if opname == "LIST":
            # protocol 0 starts with MARK, then text opcodes: refused at
            # the first of them
            ok = st == b"E" and "MPROC_EPICKLE_OPCODE" in text
        else:
            ok = (st == b"E" and "MPROC_EPICKLE_OPCODE" in text and
                  ("opcode %s " % opname) in text and "offset" in text)
        tap.check(ok, "protocol %d %s refused: %s" % (proto, what, text))


# GLOBAL module name, arguments, REDUCE: binary opcodes only, so that a
# pickle without PROTO (protocol 0 or 1 for pickle.loads) stays in the
# subset.
CALLS = [
    (b"set", b"]K\x01a\x85"),        # set([1])
    (b"set", b")"),                   # set()
    (b"frozenset", b"]K\x01a\x85"),
    (b"bytes", b")"),                 # b''
]
ENCODE = (b"c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbf"
          b"X\x06\x00\x00\x00latin1\x86R.")


def global_names_by_protocol(tap, prog):
    """Python's Unpickler.find_class reads __builtin__ as builtins only
    below protocol 3 (fix_imports); C must agree with pickle.loads."""
    cases = []
    for proto in (None, 0, 1, 2, 3, 4, 5):
        head = b"" if proto is None else bytes([0x80, proto])
        for mod in (b"__builtin__", b"builtins"):
            for name, args in CALLS:
                cases.append((head + b"c" + mod + b"\n" + name + b"\n" +
                              args + b"R.", "%s.%s protocol %s"
                              % (mod.decode(), name.decode(), proto)))
        cases.append((head + ENCODE, "_codecs.encode protocol %s" % proto))
    # the protocol is that of the last PROTO before the GLOBAL
    cases += [
        (b"\x80\x02c__builtin__\nset\n\x80\x03)R.", "PROTO 2, GLOBAL, PROTO 3"),
        (b"\x80\x03\x80\x02c__builtin__\nset\n)R.", "PROTO 3, PROTO 2, GLOBAL"),
        (b"\x80\x02c__builtin__\nset\n)R\x80\x03c__builtin__\nset\n)R\x86.",
         "PROTO 2, GLOBAL, PROTO 3, GLOBAL"),
        (b"\x80\x02c__builtin__\nset\nq\x000\x80\x03h\x00)R.",
         "memoized at protocol 2, called after PROTO 3"),
    ]
    out = run(prog, [], [c[0] for c in cases])
    bad = []
    accepted = refused = 0
    for (data, what), (st, body) in zip(cases, out):
        try:
            want = pickle.loads(data)
        except Exception as e:
            want = e
        text = body.decode(errors="replace")
        if isinstance(want, Exception):
            refused += 1
            if st != b"E" or "MPROC_EPICKLE_OPCODE" not in text:
                bad.append("%s: Python raises %s, C gives %s %s"
                           % (what, type(want).__name__, st, text))
        else:
            accepted += 1
            if st != b"P" or not same(want, pickle.loads(body)):
                bad.append("%s: Python gives %r, C gives %s %s"
                           % (what, want, st, text))
    tap.check(len(out) == len(cases) and not bad and accepted and refused,
              "accepted globals by protocol agree with pickle.loads (%d "
              "accepted, %d refused)" % (accepted, refused),
              "\n".join(bad[:10]))


# ---- out-of-band buffers -------------------------------------------------

PB = pickle.PickleBuffer


def bundle(bufs, data):
    """A pickle with its buffers, as pickle_roundtrip --buffers reads it:
    bufs is a list of (bytes, readonly)."""
    out = [struct.pack("<I", len(bufs))]
    for b, ro in bufs:
        out.append(struct.pack("<BI", 1 if ro else 0, len(b)) + b)
    out.append(data)
    return b"".join(out)


def unbundle(body):
    """A 'B' frame: C's listing [(index, readonly)], its buffers
    [(bytes, readonly)] and the pickle."""
    (nl,) = struct.unpack_from("<I", body, 0)
    i = 4
    listing = []
    for _ in range(nl):
        idx, ro = struct.unpack_from("<IB", body, i)
        listing.append((idx, bool(ro)))
        i += 5
    (nb,) = struct.unpack_from("<I", body, i)
    i += 4
    bufs = []
    for _ in range(nb):
        ro, n = struct.unpack_from("<BI", body, i)
        i += 5
        bufs.append((body[i:i + n], bool(ro)))
        i += n
    return listing, bufs, body[i:]


def py_buffers(bufs):
    """What the receiver passes to pickle.loads: every buffer as a writable
    bytearray, so that what loads shows the pickle's opcodes alone: a
    read-only memoryview where READONLY_BUFFER followed NEXT_BUFFER, the
    bytearray itself where it did not."""
    return [bytearray(b) for b, _ in bufs]


def flat(x):
    """x with every buffer-like leaf as ('buf', bytes, readonly) and bytes
    as ('bytes', bytes): what PickleBuffers and loaded buffers compare as."""
    if isinstance(x, PB):
        m = x.raw()
        return ("buf", bytes(m), m.readonly)
    if isinstance(x, (bytearray, memoryview)):
        m = memoryview(x)
        return ("buf", bytes(m), m.readonly)
    if isinstance(x, bytes):
        return ("bytes", x)
    if isinstance(x, list):
        return [flat(y) for y in x]
    if isinstance(x, tuple):
        return tuple(flat(y) for y in x)
    if isinstance(x, dict):
        return [(flat(k), flat(v)) for k, v in x.items()]
    return x


def inband(x):
    """flat(x) as it comes back in band: every buffer is plain bytes."""
    if isinstance(x, tuple) and x and x[0] == "buf":
        return ("bytes", x[1])
    if isinstance(x, list):
        return [inband(y) for y in x]
    if isinstance(x, tuple):
        return tuple(inband(y) for y in x)
    return x


def pb_values(r, depth, n_items):
    """Seeded values holding PickleBuffers of bytes and of bytearray."""
    def leaf():
        k = r.randrange(6)
        n = r.choice([0, 1, 7, 300, 70000])
        data = bytes(r.randrange(256) for _ in range(min(n, 64))) * \
            (n // 64 + 1)
        data = data[:n]
        if k == 0:
            return PB(data)
        if k == 1:
            return PB(bytearray(data))
        if k == 2:
            return data
        if k == 3:
            return r.randrange(-2**40, 2**40)
        if k == 4:
            return "s%d" % r.randrange(100)
        return None

    def value(d):
        if d <= 0 or r.random() < 0.3:
            return leaf()
        k = r.randrange(3)
        items = [value(d - 1) for _ in range(r.randrange(0, n_items))]
        if k == 0:
            return items
        if k == 1:
            return tuple(items)
        return {"k%d" % i: v for i, v in enumerate(items)}
    return [value(depth) for _ in range(200)]


def buffers_python_to_c(tap, prog):
    r = random.Random(SEED + 5)
    values = pb_values(r, 4, 5)
    # the shapes the brief names, whatever the seed does
    values += [PB(b"x"), PB(bytearray(b"y")), [PB(b"a"), PB(bytearray(b"b"))],
               {"k": PB(bytearray(b"zzz")), "j": (PB(b""),)},
               (PB(b"t" * 100000), [{"deep": PB(bytearray(b"d" * 10))}])]
    cases = []
    for v in values:
        bufs = []
        data = pickle.dumps(v, protocol=5, buffer_callback=bufs.append)
        cases.append((v, [(bytes(b.raw()), b.raw().readonly) for b in bufs],
                      data))
    total = sum(len(b) for _, b, _ in cases)
    for proto in (5, 4):
        # given writable: C must take readonly-ness from READONLY_BUFFER
        out = run(prog, ["--buffers", str(proto)],
                  [bundle([(x, False) for x, _ in b], d)
                   for _, b, d in cases])
        bad = []
        for (v, bufs, data), (st, body) in zip(cases, out):
            if st != b"B":
                bad.append("%s: %s" % (short(v), body.decode(errors="replace")))
                continue
            listing, cbufs, cdata = unbundle(body)
            # C saw each buffer once, in order, read-only as Python wrote it
            want_listing = [(i, ro) for i, (_, ro) in enumerate(bufs)]
            if listing != want_listing:
                bad.append("%s: C listed %r, want %r"
                           % (short(v), listing, want_listing))
            got = pickle.loads(cdata, buffers=py_buffers(cbufs))
            if proto == 5:
                # re-emitted by reference: the same buffers, the same flags
                if cbufs != bufs:
                    bad.append("%s: C's buffers differ" % short(v))
                if flat(got) != flat(v):
                    bad.append("%s\n  came back as %s"
                               % (short(flat(v)), short(flat(got))))
            else:
                if cbufs:
                    bad.append("%s: protocol 4 wrote buffers" % short(v))
                if flat(got) != inband(flat(v)):
                    bad.append("%s\n  came back as %s"
                               % (short(flat(v)), short(flat(got))))
        tap.check(len(out) == len(cases) and not bad,
                  "buffer_callback pickles of %d values (%d buffers) decode "
                  "in C; re-encoded at protocol %d they load in Python"
                  % (len(cases), total, proto), "\n".join(bad[:5]))


def buffers_in_band(tap, prog):
    """PickleBuffer without a buffer_callback: bytes in band, a bytearray
    as BYTEARRAY8; both read as bytes."""
    values = [PB(b"ro"), PB(bytearray(b"rw")), bytearray(b"plain"),
              [PB(bytearray(b"x" * 300)), {"k": bytearray(70000)}],
              (bytearray(),)]
    frames = [pickle.dumps(v, protocol=5) for v in values]
    out = run(prog, [], frames)
    bad = []
    for v, f, (st, body) in zip(values, frames, out):
        if st != b"P":
            bad.append("%s: %s" % (short(v), body.decode(errors="replace")))
            continue
        got = pickle.loads(body)
        if flat(got) != inband(flat(v)):
            bad.append("%s came back as %s" % (short(v), short(got)))
    tap.check(len(out) == len(values) and not bad and
              any(b"\x96" in f for f in frames),
              "in-band PickleBuffer and bytearray (BYTEARRAY8) read as "
              "bytes", "\n".join(bad))


REF = b"a reference to the caller's bytes"
C_BUFFERS = [
    [("buf", b"copied, then overwritten", True),
     ("buf", b"copied, then overwritten", False),
     ("buf", REF, True), ("buf", REF[:5], False),
     ("buf", bytes((i * 7) & 0xff for i in range(1000)), True),
     ("buf", b"", True), ("bytes", b"in band")],
    [(("bytes", b"t"), (1, ("buf", b"xyz", True))),
     (("bytes", b"key"), [("buf", b"w", False)])],
    [(("bytes", b"T" * 5000), ("buf", b"T" * 5000, True)),
     (("bytes", b"T" * 999), ("buf", b"T" * 1000, True))],
]
# b_nested's first key is the str "t"
C_BUFFERS[1][0] = ("t", C_BUFFERS[1][0][1])
C_BUFFER_COUNTS = [6, 2, 2]


def buffers_c_to_python(tap, prog):
    out = run(prog, ["--write-buffers"], [])
    tap.check(len(out) == len(C_BUFFERS), "C wrote %d values with buffers"
              % len(C_BUFFERS))
    for i, (want, (st, body)) in enumerate(zip(C_BUFFERS, out)):
        if st != b"B":
            tap.check(False, "C-written value %d with buffers" % i,
                      body.decode(errors="replace"))
            continue
        _, bufs, data = unbundle(body)
        got = pickle.loads(data, buffers=py_buffers(bufs))
        ok = flat(got) == want and len(bufs) == C_BUFFER_COUNTS[i]
        # what Python sees: a read-only buffer is a read-only memoryview
        # (READONLY_BUFFER), a writable one the bytearray given
        tap.check(ok, "C-written value %d loads with its %d buffers in "
                  "Python (readonly flags as written)" % (i, len(bufs)),
                  "%s\n  vs %s" % (short(flat(got)), short(want)))
        # Python without buffers, or with too few, fails as C does
        for given in (None, [b for b, _ in bufs][:-1]):
            try:
                pickle.loads(data, buffers=given)
                py = "loads"
            except pickle.UnpicklingError as e:
                py = str(e)
            tap.check("out-of-band" in py, "value %d with %s buffers: "
                      "Python refuses (%s)" % (i, "no" if given is None
                                               else "too few", py))
    # and C refuses the same
    _, bufs, data = unbundle(out[0][1])
    back = run(prog, ["--buffers", "5"],
               [bundle(bufs[:-1], data), bundle([], data)])
    tap.check(all(st == b"E" and b"MPROC_EPICKLE_BUFFERS" in body and
                  b"NEXT_BUFFER (0x97) at offset" in body
                  for st, body in back),
              "C with too few buffers: MPROC_EPICKLE_BUFFERS, named",
              repr(back))
    back = run(prog, [], [data])
    tap.check(len(back) == 1 and back[0][0] == b"E" and
              b"MPROC_EPICKLE_BUFFERS" in back[0][1] and
              b"none were given" in back[0][1],
              "mproc_decode of a pickle with buffers: MPROC_EPICKLE_BUFFERS",
              repr(back))
    # Python's pickler refuses PickleBuffer below protocol 5, as C's
    # protocol 4 writer does (test_pickle_oob.c)
    try:
        pickle.dumps(PB(b"x"), protocol=4)
        py = "dumps"
    except pickle.PicklingError as e:
        py = str(e)
    tap.check("protocol >= 5" in py, "Python refuses a PickleBuffer at "
              "protocol 4 too (%s)" % py)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prog = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    sys.setrecursionlimit(20000)  # same() on the 500-deep C value
    tap = Tap()
    random_roundtrips(tap, prog, count)
    c_written(tap, prog)
    refused(tap, prog)
    global_names_by_protocol(tap, prog)
    buffers_python_to_c(tap, prog)
    buffers_in_band(tap, prog)
    buffers_c_to_python(tap, prog)
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
