"""Big payloads, side by side in one run: mproc's process and thread pools
(bench_payload), Python's Pool and ThreadPool (bench_payload.py), one
memcpy of the payload and a bare pipe round trip of it (bench_payload's
anchors); imap at chunksize 1, 2 workers, a bytes argument that the task
returns (echo) or measures (len). Prints the table of docs/payloads.md and
the targets of issue 14, each met or missed.

Usage: python3 bench/compare_payload.py [BUILD_DIR] [--rounds N]
           [--target SECONDS] [--sizes 1K,64K,1M,16M] [--tasks echo,len]
           [--ref] [--old OLD_BUILD_DIR] [--raw FILE]
       python3 bench/compare_payload.py --summarize FILE

The machine is shared and noisy (CONVENTIONS.md: its second CPU wakes at
two speeds, for minutes at a time), so contenders are interleaved: a round
measures every point (a task and a size) on every contender, one
invocation each, one after the other, in an order that rotates from round
to round; each ratio is taken within a round and summarised as median (min
to max) over the rounds. A measurement runs about --target seconds
(default 0.4) after a warm-up (bench_payload.c says how).

--ref adds the contenders processes-ref and threads-ref: the same pools
with the payload written by reference (mproc_write_buffer) instead of
copied into the task's pickle. --old OLD_BUILD_DIR adds old-processes and
old-threads: the bench_payload of another build (a tree that has
bench/bench_payload.c, built beside this one), for "1 KiB no slower than
before". Every value measured goes, one JSON object a line, to --raw
(default /tmp/payload-DATE.jsonl); --summarize reprints the tables from
such a file.
"""
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

LABEL = {
    "processes": "mproc processes",
    "threads": "mproc threads",
    "processes-ref": "mproc processes, `--ref`",
    "threads-ref": "mproc threads, `--ref`",
    "old-processes": "old build: processes",
    "old-threads": "old build: threads",
    "pool": "Python `Pool`",
    "threadpool": "Python `ThreadPool`",
    "memcpy": "memcpy",
    "pipe": "pipe, 1 MiB pipe size",
}
ORDER = list(LABEL)


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def fmt_size(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def fmt_us(x):
    if x >= 10000:
        return f"{x / 1000:,.1f} ms"
    if x >= 100:
        return f"{x:,.0f} µs"
    if x >= 10:
        return f"{x:.1f} µs"
    if x >= 1:
        return f"{x:.2f} µs"
    return f"{x:.3f} µs"


def summary(xs, fmt):
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def commands(build, old, ref, target):
    """{contender: argv prefix}."""
    c = os.path.join(build, "bench", "bench_payload")
    py = [sys.executable, os.path.join(HERE, "bench_payload.py")]
    t = ["--target", str(target)]
    cmds = {
        "processes": [c, "--contender", "processes"] + t,
        "threads": [c, "--contender", "threads"] + t,
        "pool": py + ["--contender", "pool"] + t,
        "threadpool": py + ["--contender", "threadpool"] + t,
        "memcpy": [c, "--contender", "memcpy"] + t,
        "pipe": [c, "--contender", "pipe"] + t,
    }
    if ref:
        cmds["processes-ref"] = cmds["processes"] + ["--ref"]
        cmds["threads-ref"] = cmds["threads"] + ["--ref"]
    if old:
        o = os.path.join(old, "bench", "bench_payload")
        cmds["old-processes"] = [o, "--contender", "processes"] + t
        cmds["old-threads"] = [o, "--contender", "threads"] + t
    return cmds


def measure(cmd, task, size):
    """(us a task, n), or (None, why) when the contender failed."""
    p = subprocess.run(cmd + ["--task", task, "--size", str(size)],
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        f = line.split()
        if p.returncode == 0 and len(f) == 6 and f[4] == "us":
            return float(f[3]), int(f[5])
    why = " / ".join(p.stderr.strip().splitlines())[:400] or f"exit status {p.returncode}"
    return None, why


def run(args):
    build = args["build"]
    cmds = commands(build, args["old"], args["ref"], args["target"])
    for k, cmd in cmds.items():
        if not os.path.exists(cmd[0]):
            sys.exit(f"compare_payload.py: {cmd[0]} missing: build first")
    rows = []
    raw = open(args["raw"], "w")
    meta = {"meta": True, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv, "uname": " ".join(os.uname()), "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}
    for b, name in ((build, "build"), (args["old"], "old")):
        if b:
            try:
                src = json.load(open(os.path.join(b, "meson-info", "meson-info.json")))["directories"]["source"]
                meta[name] = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                                            capture_output=True, text=True).stdout.strip() + " (" + src + ")"
            except (OSError, KeyError, ValueError):
                meta[name] = b
    raw.write(json.dumps(meta) + "\n")
    names = [k for k in ORDER if k in cmds]
    for r in range(args["rounds"]):
        raw.write(json.dumps({"load": True, "round": r, "loadavg": os.getloadavg()[0]}) + "\n")
        meta.setdefault("loadavg", []).append(os.getloadavg()[0])
        for size in args["sizes"]:
            for task in args["tasks"]:
                who = [k for k in names if k != "memcpy" or task == args["tasks"][0]]
                k = r % len(who)
                who = who[k:] + who[:k]
                if r % 2:
                    who.reverse()
                for c in who:
                    us, n = measure(cmds[c], task, size)
                    row = {"round": r, "contender": c,
                           "task": "-" if c == "memcpy" else task,
                           "size": size, "us": us, "n": n}
                    if us is None:
                        row["n"], row["error"] = 0, n
                        print(f"{c} {task} {size}: {n}", file=sys.stderr, flush=True)
                    rows.append(row)
                    raw.write(json.dumps(row) + "\n")
                    raw.flush()
        print(f"round {r + 1}/{args['rounds']} done", file=sys.stderr, flush=True)
    raw.close()
    return meta, rows


def tables(meta, rows):
    vals = {}  # (contender, task, size) -> {round: us}
    errors = {}  # the same key -> the last failure's message
    for row in rows:
        key = (row["contender"], row["task"], row["size"])
        if row.get("error"):
            errors[key] = row["error"]
            vals.setdefault(key, {})
            continue
        vals.setdefault(key, {})[row["round"]] = row["us"]
    have = [c for c in ORDER if any(k[0] == c for k in vals)]
    tasks = [t for t in ("echo", "len") if any(k[1] == t for k in vals)]
    sizes = sorted({k[2] for k in vals})
    nrounds = len({row["round"] for row in rows})

    def get(c, task, size):
        return vals.get((c, "-" if c == "memcpy" else task, size), {})

    def ratio(num, den, task, size):
        a, b = get(num[0], task, size), get(den[0], task, size)
        return [a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0]

    print(f"Per task, median (min–max) over {nrounds} rounds; imap, chunksize 1, 2 workers.")
    for task in tasks:
        print()
        print(f"| {task}, per task | " + " | ".join(LABEL[c] for c in have) + " |")
        print("|---|" + "---|" * len(have))
        for size in sizes:
            cells = []
            for c in have:
                v = list(get(c, task, size).values())
                failed = (c, "-" if c == "memcpy" else task, size) in errors
                cells.append((summary(v, fmt_us) if v else "") + (" failed*" if failed else ""))
            print(f"| {fmt_size(size)} | " + " | ".join(cells) + " |")

    # Ratios within a round.
    pairs = [
        ("processes", "pool", "Python `Pool` / processes", "x faster"),
        ("processes", "memcpy", "processes / memcpy", "x"),
        ("processes", "pipe", "processes / pipe", "x"),
        ("threads", "threadpool", "threads / Python `ThreadPool`", "x"),
        ("processes-ref", "pool", "Python `Pool` / processes-ref", "x faster"),
        ("processes-ref", "memcpy", "processes-ref / memcpy", "x"),
        ("threads-ref", "threadpool", "threads-ref / Python `ThreadPool`", "x"),
        ("processes", "old-processes", "processes / old build's", "x"),
        ("threads", "old-threads", "threads / old build's", "x"),
    ]
    for task in tasks:
        print()
        print(f"| {task}: ratio within a round | " + " | ".join(fmt_size(s) for s in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for a, b, label, unit in pairs:
            if a not in have or b not in have:
                continue
            cells = []
            for size in sizes:
                if unit == "x faster":
                    xs = [1 / x for x in ratio((a,), (b,), task, size)]
                else:
                    xs = ratio((a,), (b,), task, size)
                cells.append(summary(xs, lambda x: f"{x:.2f}x") if xs else "")
            print(f"| {label} | " + " | ".join(cells) + " |")

    # The targets of issue 14, judged on the median ratio.
    print()
    print("| target (issue 14) | measured: median (min–max), rounds that met it | |")
    print("|---|---|---|")

    def judge(label, xs, ok):
        if not xs:
            print(f"| {label} | not measured | |")
            return
        met = sum(1 for x in xs if ok(x))
        verdict = "met" if ok(statistics.median(xs)) else "missed"
        print(f"| {label} | {summary(xs, lambda x: f'{x:.2f}x')}, {met}/{len(xs)} | **{verdict}** |")

    for p in [c for c in ("processes", "processes-ref") if c in have]:
        for size in (1 << 20, 16 << 20):
            if size not in sizes or "echo" not in tasks:
                continue
            judge(f"{p}, echo {fmt_size(size)}: ≥ 20x faster than Python's `Pool`",
                  [1 / x for x in ratio((p,), ("pool",), "echo", size)], lambda x: x >= 20)
            judge(f"{p}, echo {fmt_size(size)}: ≤ 4x one memcpy",
                  ratio((p,), ("memcpy",), "echo", size), lambda x: x <= 4)
    for t in [c for c in ("threads", "threads-ref") if c in have]:
        for task in tasks:
            for size in sizes:
                if size >= 64 << 10:
                    judge(f"{t}, {task} {fmt_size(size)}: ≤ Python's `ThreadPool`",
                          ratio((t,), ("threadpool",), task, size), lambda x: x <= 1)
    if 1 << 10 in sizes:
        for task in tasks:
            if "old-processes" in have:
                judge(f"processes, {task} 1 KiB: no slower than the old build (≤ 1.05x, for noise)",
                      ratio(("processes",), ("old-processes",), task, 1 << 10), lambda x: x <= 1.05)
            else:
                print(f"| processes, {task} 1 KiB: no slower than before | not measured (needs --old) | |")
    if errors:
        print()
        for (c, task, size), why in sorted(errors.items(), key=lambda kv: (ORDER.index(kv[0][0]), kv[0][1], kv[0][2])):
            print(f"\\* {LABEL[c]}, {task} {fmt_size(size)} failed (in some or every round): {why}  ")
    print()
    print(f"Measured {meta.get('date', '?')} on {meta.get('uname', '?')}, {meta.get('cpus', '?')} CPUs, "
          f"Python {meta.get('python', '?')}; build {meta.get('build', '?')}"
          + (f"; old build {meta['old']}" if meta.get("old") else "") + "."
          + (" Load average (1 min) at each round's start: "
             + ", ".join(f"{x:.1f}" for x in meta["loadavg"]) + "." if meta.get("loadavg") else ""))


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--summarize"] and len(argv) == 2:
        meta, rows = {}, []
        for line in open(argv[1]):
            d = json.loads(line)
            if d.get("meta"):
                meta = d
            elif d.get("load"):
                meta.setdefault("loadavg", []).append(d["loadavg"])
            else:
                rows.append(d)
        tables(meta, rows)
        return
    args = {"build": "build", "rounds": 5, "target": 0.4, "ref": False, "old": None,
            "sizes": [1 << 10, 64 << 10, 1 << 20, 16 << 20], "tasks": ["echo", "len"],
            "raw": datetime.datetime.now().strftime("/tmp/payload-%Y%m%d-%H%M%S.jsonl")}
    i = 0
    try:
        while i < len(argv):
            a = argv[i]
            if a == "--ref":
                args["ref"] = True
            elif a in ("--rounds", "--target", "--sizes", "--tasks", "--old", "--raw"):
                v = argv[i + 1]
                i += 1
                if a == "--rounds":
                    args["rounds"] = int(v)
                elif a == "--target":
                    args["target"] = float(v)
                elif a == "--sizes":
                    args["sizes"] = [parse_size(s) for s in v.split(",")]
                elif a == "--tasks":
                    args["tasks"] = v.split(",")
                    if not set(args["tasks"]) <= {"echo", "len"}:
                        raise ValueError(v)
                elif a == "--old":
                    args["old"] = v
                else:
                    args["raw"] = v
            elif not a.startswith("--") and i == 0:
                args["build"] = a
            else:
                raise ValueError(a)
            i += 1
    except (IndexError, ValueError):
        sys.exit(__doc__.split("\n\n")[1])
    print(f"raw values: {args['raw']}", file=sys.stderr)
    meta, rows = run(args)
    tables(meta, rows)


if __name__ == "__main__":
    main()
