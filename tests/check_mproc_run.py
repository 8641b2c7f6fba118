"""mproc-run across a SIGKILL and --resume, with crashing inputs: the
joblog and the results file hold each input exactly once, each line as its
input calls for; -k keeps input order; --resume-failed runs only failures;
exit statuses as GNU parallel's; a journal resumes as the joblog does.
Usage: check_mproc_run.py path/to/mproc-run path/to/parser.so"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

run, so = sys.argv[1], os.path.abspath(sys.argv[2])
tmp = tempfile.mkdtemp(prefix="mproc-run-test-")
checks = []


def check(name, ok):
    checks.append((name, bool(ok)))


N = 3000
lines = []
for i in range(N):
    if i % 50 == 7:
        lines.append(f"nocomma{i}")          # crashes (SIGSEGV)
    elif i % 70 == 3:
        lines.append(f"p{i},notanumber")      # raises ValueError
    else:
        lines.append(f"p{i},{i % 90}")
inp = os.path.join(tmp, "in.txt")
with open(inp, "w") as f:
    f.write("\n".join(lines) + "\n")


def expect(seq):
    line = lines[seq - 1]
    if "," not in line:
        return "CRASHED"
    return "RAISED" if line.endswith("notanumber") else "OK"


joblog = os.path.join(tmp, "joblog")
results = os.path.join(tmp, "results.jsonl")
args = [run, "-j", "2", "--joblog", joblog, "--results", results,
        f"{so}:parse_slow", inp]

# First run, killed once the joblog holds 600 lines.
p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 120
while p.poll() is None and time.monotonic() < deadline:
    try:
        with open(joblog) as f:
            if sum(1 for _ in f) > 600:
                break
    except FileNotFoundError:
        pass
    time.sleep(0.01)
p.send_signal(signal.SIGKILL)
p.wait()
check("the first run was killed part way", p.returncode == -signal.SIGKILL)
with open(joblog) as f:
    first = sum(1 for l in f if l.endswith("\n")) - 1
check("the killed run logged some inputs, not all", 0 < first < N)

# Resume.
r = subprocess.run(args[:1] + ["--resume"] + args[1:], capture_output=True,
                   text=True, timeout=300)
rows = [l.rstrip("\n").split("\t") for l in open(joblog)]
check("joblog header is GNU parallel's",
      rows[0] == ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive",
                  "Exitval", "Signal", "Command"])
seqs = [int(x[0]) for x in rows[1:]]
check("joblog holds each input exactly once", sorted(seqs) == list(range(1, N + 1)))
bad = []
for x in rows[1:]:
    seq, exitval, sig = int(x[0]), int(x[6]), int(x[7])
    want = expect(seq)
    ok = {"OK": (0, 0), "RAISED": (1, 0), "CRASHED": (-1, 11)}[want] == (exitval, sig)
    if not ok or x[8] != lines[seq - 1]:
        bad.append(seq)
check("each joblog line has the exit value and signal its input calls for", not bad)
recs = [json.loads(l) for l in open(results)]
got = sorted(x["seq"] for x in recs)
missing = sorted(set(range(1, N + 1)) - set(got))
check(f"results hold each input exactly once ({len(got)} lines, "
      f"{len(set(got))} inputs, missing {missing[:5]})",
      got == list(range(1, N + 1)))
bad = []
for x in recs:
    seq = x["seq"]
    want = expect(seq)
    if x["status"] != want or x["input"] != lines[seq - 1]:
        bad.append(seq)
    elif want == "OK":
        name, age = lines[seq - 1].split(",")
        if x["value"] != {"name": name, "age": int(age)} or x["error"] is not None:
            bad.append(seq)
    elif want == "CRASHED" and x["signal"] != 11:
        bad.append(seq)
    elif want == "RAISED" and x["error"]["type"] != "ValueError":
        bad.append(seq)
check("each result has the status and value its input calls for", not bad)
ran2 = N - first
failed2 = sum(1 for s in range(1, N + 1) if expect(s) != "OK" and s not in seqs[:first])
check("the resumed run printed one line per OK input it ran",
      len(r.stdout.splitlines()) == ran2 - failed2)
check("the resumed run exits with its failures (101: more than 100)",
      r.returncode == min(failed2, 101) if failed2 <= 100 else r.returncode == 101)

# --resume-failed: only the failures run again, and fail again.
r = subprocess.run(args[:1] + ["--resume-failed"] + args[1:], capture_output=True,
                   text=True, timeout=300)
nfail = sum(1 for s in range(1, N + 1) if expect(s) != "OK")
check("--resume-failed runs only the failed inputs", r.stdout == "" and r.returncode == 101)
rows = [l.split("\t") for l in open(joblog)][1:]
check("after --resume-failed the joblog still holds each input once",
      sorted(int(x[0]) for x in rows) == list(range(1, N + 1)))
recs = [json.loads(l) for l in open(results)]
check("after --resume-failed the results still hold each input once",
      sorted(x["seq"] for x in recs) == list(range(1, N + 1)))

# -k: input order; exit status = failures.
small = os.path.join(tmp, "small.txt")
with open(small, "w") as f:
    f.write("a,1\nb\nc,3\nd,x\ne,5\n")
r = subprocess.run([run, "-k", "-j", "2", f"{so}:parse", small],
                   capture_output=True, text=True, timeout=60)
check("-k prints OK values in input order as Python reprs",
      r.stdout == "{'name': 'a', 'age': 1}\n{'name': 'c', 'age': 3}\n"
                  "{'name': 'e', 'age': 5}\n")
check("exit status is the number of failed inputs", r.returncode == 2)
r = subprocess.run([run, "--type", "json", f"{so}:parse"], input='"f,6"\n',
                   capture_output=True, text=True, timeout=60)
check("--type json", r.stdout == "{'name': 'f', 'age': 6}\n" and r.returncode == 0)
r = subprocess.run([run, f"{so}:nosuchfunction"], input="", capture_output=True,
                   text=True, timeout=60)
check("a missing function exits 255", r.returncode == 255)
r = subprocess.run([run, "--halt", "now,fail=1", "-j", "1", f"{so}:parse", small],
                   capture_output=True, text=True, timeout=60)
check("--halt now,fail=1 stops at the first failure",
      r.returncode in (1, 2) and "halted" in r.stderr)

# --journal: a rerun takes every result from the journal.
jn = os.path.join(tmp, "j.db")
r1 = subprocess.run([run, "-k", "--journal", jn, f"{so}:parse", small],
                    capture_output=True, text=True, timeout=60)
r2 = subprocess.run([run, "-k", "--journal", jn, f"{so}:parse", small],
                    capture_output=True, text=True, timeout=60)
check("--journal: the rerun gives the same output",
      r1.stdout == r2.stdout and r1.returncode == r2.returncode == 2)

# --timeout N%: of the median runtime of the inputs that ended OK (1 ms
# here); three inputs hang for a minute and end TIMEOUT. 3000 inputs: the
# first two calls of 1024 set the median (the second is submitted before
# the first is read, so it runs without a timeout).
stuck = os.path.join(tmp, "stuck.txt")
slines = [f"stuck{i},1" if i in (2100, 2500, 2900) else f"q{i},{i % 90}"
          for i in range(3000)]
with open(stuck, "w") as f:
    f.write("\n".join(slines) + "\n")
jl = os.path.join(tmp, "stuck.log")
r = subprocess.run([run, "-k", "-j", "2", "--timeout", "2000%", "--joblog", jl,
                    "--results", os.path.join(tmp, "stuck.csv"),
                    f"{so}:parse_stuck", stuck],
                   capture_output=True, text=True, timeout=300)
rows = [l.rstrip("\n").split("\t") for l in open(jl)][1:]
timed = sorted(int(x[0]) for x in rows if x[7] != "0")
check("--timeout 2000% ends the three stuck inputs TIMEOUT",
      r.returncode == 3 and timed == [2101, 2501, 2901] and
      r.stderr.count("TIMEOUT") == 3)
check("-k with calls of 1024: the joblog in input order",
      [int(x[0]) for x in rows] == list(range(1, 3001)))
csv_lines = open(os.path.join(tmp, "stuck.csv")).read().splitlines()
check("--results .csv: a header and a line per input",
      csv_lines[0] == "seq,input,status,value,error,signal,attempts" and
      len(csv_lines) == 3001 and csv_lines[1].startswith('1,"q0,0",OK,'))

subprocess.run(["rm", "-rf", tmp])
print(f"1..{len(checks)}")
for n, (name, ok) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {n} - {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
