#!/usr/bin/env bash
# compare_builds.sh - A/B benchmark of two builds of mproc (an older commit
# built beside this tree, and this one), interleaved so that both meet the
# same machine state: compare_pool and mproc-bench --quick.
#
#   git worktree add /tmp/mproc-old COMMIT
#   (cd /tmp/mproc-old && meson setup build && ninja -C build)
#   bench/compare_builds.sh build --old /tmp/mproc-old/build [options]
#   bench/compare_builds.sh --summarize RUN_DIR   (re-print a saved run)
#
# Options:
#   -n N              rounds per side for both benchmarks (default: 7 for
#                     compare_pool, 5 for mproc-bench --quick)
#   --cp-rounds N     rounds per side of compare_pool (0 skips it)
#   --mb-rounds N     rounds per side of mproc-bench --quick (0 skips it)
#   --old DIR         the baseline build dir (required)
#   --order abab|abba abab: old,new,old,new,...  abba: old,new,new,old,...
#                     (abba cancels a linear drift; default abab)
#   --harness old|own compare_pool.py/bench_pool.py of this tree for both
#                     sides (default: Python's side and the parsing are then
#                     identical), or each build's own source tree's
#   --out DIR         where to save the raw outputs
#                     (default /tmp/ab/YYYYmmdd-HHMMSS)
#
# One round of a side is one invocation:
#   python3 <harness>/bench/compare_pool.py BUILD --rounds 1
#     (the documented command with --rounds 1; run through a small wrapper
#      that also saves the raw "name value unit" lines of bench_pool and
#      bench_pool.py, so the summary works from full-precision values)
#   BUILD/bench/mproc-bench --quick --python PY --csv FILE
# All compare_pool rounds run first, then all mproc-bench rounds.
# Nothing is built: both build dirs must be built already.
#
# Saved in the run dir: NN-cp-SIDE.md (compare_pool's table), .raw, .err;
# NN-mb-SIDE.txt (mproc-bench's table), .csv, .err; log.tsv (start time,
# duration, load average, exit status of every invocation); meta.txt;
# summary.md (what is printed at the end).
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=$(command -v python3) || { echo "compare_builds.sh: python3 not found" >&2; exit 2; }

summarize() {
	"$PY" - "$1" <<'PYEOF'
import csv, glob, os, re, statistics, sys

run = sys.argv[1]

def med(xs): return statistics.median(xs)

def fmt(x, f):
    return f.format(x)

def summ(xs, f):
    if not xs:
        return "n/a"
    return f"{fmt(med(xs), f)} ({fmt(min(xs), f)}–{fmt(max(xs), f)})"

def rounds_of(kind, ext):
    """{side: [(seq, path), ...]} in run order."""
    out = {"old": [], "new": []}
    for p in sorted(glob.glob(os.path.join(run, f"*-{kind}-*.{ext}"))):
        m = re.match(rf"(\d+)-{kind}-(old|new)\.{ext}$", os.path.basename(p))
        if m and os.path.getsize(p) > 0:
            out[m.group(2)].append((int(m.group(1)), p))
    return out

lines = []
def say(s=""):
    lines.append(s)

# ---- compare_pool ---------------------------------------------------------
cp = rounds_of("cp", "raw")
if cp["old"] or cp["new"]:
    vals = {}
    for side in ("old", "new"):
        rs = []
        for _, p in cp[side]:
            d = {}
            for ln in open(p):
                who, name, v, unit = ln.split()
                d[(who, name)] = (float(v), unit)
            rs.append(d)
        vals[side] = rs

    def series(side, fn):
        xs = []
        for d in vals[side]:
            try:
                xs.append(fn(lambda who, k: d[(who, k)][0]))
            except (KeyError, ZeroDivisionError):
                pass
        return xs

    # (label, function of get(who,name), format, better)
    ratios = [
        ("imap chunksize 1: mproc / Python Pool (tasks/s)", lambda g: g("mproc", "imap_c1") / g("python", "imap_c1"), "{:.1f}x", "higher"),
        ("map default chunksize: mproc / Python Pool (tasks/s)", lambda g: g("mproc", "map_default") / g("python", "map_default"), "{:.2f}x", "higher"),
        ("apply round trip: Python / mproc (us)", lambda g: g("python", "apply_rtt") / g("mproc", "apply_rtt"), "{:.1f}x", "higher"),
        ("open/apply/close: Python / mproc (ms)", lambda g: g("python", "open_apply_close") / g("mproc", "open_apply_close"), "{:.1f}x", "higher"),
        ("apply round trip / bare pipe round trip", lambda g: g("mproc", "apply_rtt") / g("mproc", "pipe_rtt"), "{:.2f}x", "lower"),
        ("imap c1 / minimal fork-and-pipe pool (faster)", lambda g: g("mproc", "imap_c1") / g("mproc", "floor_imap"), "{:.1f}x", "higher"),
        ("batched pipe transport / imap c1 (slower)", lambda g: g("mproc", "transport_ceiling") / g("mproc", "imap_c1"), "{:.2f}x", "lower"),
        ("recovery / fork+exit+wait", lambda g: g("mproc", "recovery") / g("mproc", "fork_wait"), "{:.2f}x", "lower"),
        ("open/apply/close forkserver / fork", lambda g: g("mproc", "open_apply_close_forkserver") / g("mproc", "open_apply_close"), "{:.2f}x", "lower"),
        ("task_timeout cost on imap c1 (%)", lambda g: (g("mproc", "imap_c1") / g("mproc", "imap_c1_timeout") - 1) * 100, "{:+.0f}%", "lower"),
    ]
    absolute = [
        ("mproc imap_c1 (tasks/s)", "mproc", "imap_c1", "{:,.0f}", "higher"),
        ("mproc map_default (tasks/s)", "mproc", "map_default", "{:,.0f}", "higher"),
        ("mproc apply_rtt (us)", "mproc", "apply_rtt", "{:.2f}", "lower"),
        ("mproc open_apply_close (ms)", "mproc", "open_apply_close", "{:.3f}", "lower"),
        ("mproc open_apply_close_forkserver (ms)", "mproc", "open_apply_close_forkserver", "{:.3f}", "lower"),
        ("mproc imap_c1_timeout (tasks/s)", "mproc", "imap_c1_timeout", "{:,.0f}", "higher"),
        ("mproc recovery (us)", "mproc", "recovery", "{:.0f}", "lower"),
        ("mproc crash_task (us)", "mproc", "crash_task", "{:.0f}", "lower"),
        ("floor pipe_rtt (us)", "mproc", "pipe_rtt", "{:.2f}", "lower"),
        ("floor floor_imap (tasks/s)", "mproc", "floor_imap", "{:,.0f}", "higher"),
        ("floor transport_ceiling (tasks/s)", "mproc", "transport_ceiling", "{:,.0f}", "higher"),
        ("floor fork_wait (us)", "mproc", "fork_wait", "{:.0f}", "lower"),
        ("Python imap_c1 (tasks/s)", "python", "imap_c1", "{:,.0f}", "higher"),
        ("Python map_default (tasks/s)", "python", "map_default", "{:,.0f}", "higher"),
        ("Python apply_rtt (us)", "python", "apply_rtt", "{:.2f}", "lower"),
        ("Python open_apply_close (ms)", "python", "open_apply_close", "{:.3f}", "lower"),
    ]

    def newold(o, n):
        if not o or not n or med(o) == 0:
            return ""
        return f"{med(n) / med(o):.3f}"

    say(f"## compare_pool: {len(vals['old'])} rounds old, {len(vals['new'])} rounds new "
        "(each round one `compare_pool.py BUILD --rounds 1`, interleaved)")
    say()
    say("Ratios within a round, median (min–max) over the rounds:")
    say()
    say("| ratio | better | old | new | new/old (medians) |")
    say("|---|---|---|---|---|")
    for label, fn, f, better in ratios:
        o, n = series("old", fn), series("new", fn)
        no = "" if "%" in f else newold(o, n)
        if "%" in f and o and n:
            no = f"{med(n) - med(o):+.1f} pts"
        say(f"| {label} | {better} | {summ(o, f)} | {summ(n, f)} | {no} |")
    say()
    say("Absolute values, median (min–max) over the rounds (drift with the machine's load):")
    say()
    say("| value | better | old | new | new/old (medians) |")
    say("|---|---|---|---|---|")
    for label, who, k, f, better in absolute:
        fn = lambda g, who=who, k=k: g(who, k)
        o, n = series("old", fn), series("new", fn)
        say(f"| {label} | {better} | {summ(o, f)} | {summ(n, f)} | {newold(o, n)} |")
    say()

# ---- mproc-bench --quick --------------------------------------------------
mb = rounds_of("mb", "csv")
if mb["old"] or mb["new"]:
    # point key -> backend -> side -> [us_per_task], [speedup]
    us, sp, order = {}, {}, []
    for side in ("old", "new"):
        for _, p in mb[side]:
            for r in csv.DictReader(open(p)):
                key = (r["workload"], r["api"], r["workers"], r["chunksize"], r["task_ns"], r["payload"])
                if key not in us:
                    order.append(key)
                b = r["backend"]
                try:
                    u = float(r["us_per_task"])
                except ValueError:
                    continue
                us.setdefault(key, {}).setdefault(b, {}).setdefault(side, []).append(u)
                if r["speedup"]:
                    sp.setdefault(key, {}).setdefault(b, {}).setdefault(side, []).append(float(r["speedup"]))

    def label(key):
        wl, api, w, cs, ns, pl = key
        s = f"{wl} {api} w{w} c{cs}"
        if int(ns):
            n = int(ns)
            s += " spin " + (f"{n // 1000000} ms" if n >= 1000000 else f"{n // 1000} us" if n >= 1000 else f"{n} ns")
        if int(pl):
            s += f" {pl} B"
        return s

    def per_round_ratio(key, side, num, den):
        """num/den per round (the backends of one round share its machine state)."""
        a = us.get(key, {}).get(num, {}).get(side, [])
        b = us.get(key, {}).get(den, {}).get(side, [])
        return [x / y for x, y in zip(a, b) if y]

    say(f"## mproc-bench --quick: {len(mb['old'])} runs old, {len(mb['new'])} runs new (interleaved)")
    say()
    say("us a task (startup: us a cycle), median (min–max) over the runs; each run's own figure is the median of its 3 repeats:")
    say()
    say("| point | backend | old | new | new/old (medians) |")
    say("|---|---|---|---|---|")
    for key in order:
        for b in ("threads", "processes"):
            d = us.get(key, {}).get(b, {})
            o, n = d.get("old", []), d.get("new", [])
            no = f"{med(n) / med(o):.3f}" if o and n else ""
            say(f"| {label(key)} | {b} | {summ(o, '{:.3f}')} | {summ(n, '{:.3f}')} | {no} |")
    say()
    say("Ratios within a run, median (min–max) over the runs (higher = mproc better, except vs pthread-min where lower is better):")
    say()
    say("| point | ratio | old | new |")
    say("|---|---|---|---|")
    pairs = [
        ("py-Pool / processes", "py-pool", "processes"),
        ("py-ThreadPool / threads", "py-threadpool", "threads"),
        ("threads / pthread-min", "threads", "pthread-min"),
        ("processes / threads", "processes", "threads"),
    ]
    for key in order:
        for lab, num, den in pairs:
            o, n = per_round_ratio(key, "old", num, den), per_round_ratio(key, "new", num, den)
            if o or n:
                say(f"| {label(key)} | {lab} | {summ(o, '{:.2f}x')} | {summ(n, '{:.2f}x')} |")
        for b in ("threads", "processes"):
            d = sp.get(key, {}).get(b, {})
            if d:
                say(f"| {label(key)} | {b} speedup over serial | {summ(d.get('old', []), '{:.3g}')} | {summ(d.get('new', []), '{:.3g}')} |")
    say()

if not lines:
    say("no results found in " + run)
text = "\n".join(lines) + "\n"
sys.stdout.write(text)
with open(os.path.join(run, "summary.md"), "w") as f:
    f.write(text)
PYEOF
}

usage() { sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

if [ "${1:-}" = "--summarize" ]; then
	[ -d "${2:-}" ] || usage
	summarize "$2"
	exit $?
fi

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
NEW=$1; shift
OLD=
CP_N=7 MB_N=5 ORDER=abab HARNESS=old OUT=
while [ $# -gt 0 ]; do
	case "$1" in
	-n) CP_N=$2 MB_N=$2; shift 2 ;;
	--cp-rounds) CP_N=$2; shift 2 ;;
	--mb-rounds) MB_N=$2; shift 2 ;;
	--old) OLD=$2; shift 2 ;;
	--order) ORDER=$2; shift 2 ;;
	--harness) HARNESS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	*) echo "compare_builds.sh: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$OLD" ] || usage
case "$ORDER" in abab|abba) ;; *) usage ;; esac
case "$HARNESS" in old|own) ;; *) usage ;; esac
[[ "$CP_N" =~ ^[0-9]+$ && "$MB_N" =~ ^[0-9]+$ ]] || usage

OLD=$(cd "$OLD" && pwd) && NEW=$(cd "$NEW" && pwd) || exit 2
for b in "$OLD" "$NEW"; do
	for x in bench/bench_pool bench/mproc-bench; do
		[ -x "$b/$x" ] || { echo "compare_builds.sh: $b/$x missing: build that dir first (this script builds nothing)" >&2; exit 2; }
	done
done

srcdir() {  # the source tree of a meson build dir
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
		"$1/meson-info/meson-info.json" 2>/dev/null
}
OLD_SRC=$(srcdir "$OLD"); NEW_SRC=$(srcdir "$NEW")
if [ "$HARNESS" = old ]; then
	CP_OLD=$HERE/compare_pool.py CP_NEW=$HERE/compare_pool.py
else
	CP_OLD=$OLD_SRC/bench/compare_pool.py CP_NEW=$NEW_SRC/bench/compare_pool.py
fi

for f in "$CP_OLD" "$CP_NEW"; do
	[ -f "$f" ] || { echo "compare_builds.sh: $f missing" >&2; exit 2; }
done

OUT=${OUT:-/tmp/ab/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 2

{
	echo "date: $(date -Is)"
	echo "host: $(uname -srm), $(nproc) CPUs; python: $("$PY" -V 2>&1) ($PY)"
	for s in old new; do
		if [ $s = old ]; then b=$OLD src=$OLD_SRC cpy=$CP_OLD; else b=$NEW src=$NEW_SRC cpy=$CP_NEW; fi
		rev=$(git --no-optional-locks -C "$src" describe --always --dirty 2>/dev/null || echo '?')
		echo "$s: build $b, source $src at $rev"
		echo "$s:   bench_pool $(stat -c %y "$b/bench/bench_pool"), mproc-bench $(stat -c %y "$b/bench/mproc-bench")"
		echo "$s:   harness $cpy"
	done
	echo "order: $ORDER; compare_pool rounds per side: $CP_N; mproc-bench --quick runs per side: $MB_N"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt"
printf 'seq\tkind\tside\tstart\tseconds\tloadavg_before\texit\n' > "$OUT/log.tsv"

# compare_pool with --rounds 1, through a wrapper that keeps the raw lines.
cp_round() {  # cp_round COMPARE_POOL_PY BUILD RAWFILE  (table on stdout)
	"$PY" - "$@" <<'PYEOF'
import importlib.util, sys, time
script, build, raw = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("compare_pool", script)
cp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cp)
orig = cp.run
def run(cmd):
    t0 = time.monotonic()
    vals = orig(cmd)
    who = "mproc" if cmd[0].endswith("bench_pool") else "python"
    with open(raw, "a") as f:
        for k, (v, unit) in vals.items():
            f.write(f"{who} {k} {v!r} {unit}\n")
    print(f"{who} side took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return vals
cp.run = run
sys.argv = [script, build, "--rounds", "1"]
cp.main()
PYEOF
}

FAILS=0 SEQ=0
one() {  # one KIND SIDE ROUND
	local kind=$1 side=$2 b cpy base t0 t1 rc load
	if [ "$side" = old ]; then b=$OLD cpy=$CP_OLD; else b=$NEW cpy=$CP_NEW; fi
	SEQ=$((SEQ + 1))
	base=$OUT/$(printf %03d $SEQ)-$kind-$side
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s.%N)
	if [ "$kind" = cp ]; then
		cp_round "$cpy" "$b" "$base.raw" > "$base.md" 2> "$base.err"
	else
		"$b/bench/mproc-bench" --quick --python "$PY" --csv "$base.csv" > "$base.txt" 2> "$base.err"
	fi
	rc=$?
	t1=$(date +%s.%N)
	local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SEQ" "$kind" "$side" "$(date -Is -d @"${t0%.*}")" "$secs" "$load" "$rc" >> "$OUT/log.tsv"
	printf '[%s] %s %s round %s: %s s, exit %s (load before: %s)\n' "$(date +%T)" "$kind" "$side" "$3" "$secs" "$rc" "$load" >&2
	if [ $rc -ne 0 ]; then
		FAILS=$((FAILS + 1))
		echo "compare_builds.sh: $kind $side failed, see $base.err" >&2
		[ "$kind" = cp ] && rm -f "$base.raw"   # a partial round would skew the summary
	fi
}

series() {  # series KIND N
	local i
	for ((i = 1; i <= $2; i++)); do
		if [ "$ORDER" = abba ] && [ $((i % 2)) -eq 0 ]; then
			one "$1" new "$i"; one "$1" old "$i"
		else
			one "$1" old "$i"; one "$1" new "$i"
		fi
	done
}

START=$(date +%s)
series cp "$CP_N"
series mb "$MB_N"
echo "total: $(( $(date +%s) - START )) s; raw outputs in $OUT" >&2
echo
summarize "$OUT"
[ $FAILS -eq 0 ] || { echo "compare_builds.sh: $FAILS invocation(s) failed" >&2; exit 1; }
