#!/usr/bin/env python3
"""Every public function of include/mproc.h has a man page or a link to the
page that documents it (a .Nm entry in that page's NAME section), and every
cross-reference (.Xr mproc_... 3) names a page that will be installed.

    check_man.py SOURCE_ROOT          (TAP on stdout)
"""
import glob, os, re, sys

root = sys.argv[1]
header = open(os.path.join(root, "include", "mproc.h")).read()
# A declaration: MPROC_EXPORT <type> [*]name( ... possibly over two lines.
exported = set(re.findall(r"MPROC_EXPORT[^;(]*?\b(mproc_\w+)\s*\(", header))

pages, names = {}, {}
for path in sorted(glob.glob(os.path.join(root, "docs", "*.3"))):
    page = os.path.basename(path)[:-2]
    text = open(path).read()
    pages[page] = text
    for n in re.findall(r"^\.Nm (mproc_\w+)", text, re.M):
        names.setdefault(n, page)

checks = []
for fn in sorted(exported):
    checks.append((fn in names or fn in pages,
                   f"{fn} has a man page" + (f" ({names[fn]}(3))" if fn in names else "")))
installable = set(names) | set(pages)
for page, text in pages.items():
    for ref in sorted(set(re.findall(r"^\.Xr (mproc\w*) 3", text, re.M))):
        checks.append((ref in installable, f"{page}(3) refers to {ref}(3), which exists"))

print(f"1..{len(checks)}")
failed = 0
for i, (ok, what) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    failed += not ok
sys.exit(1 if failed else 0)
