#!/bin/sh
# CPython's test_asyncio modules of chapter "Beyond TCP" (UDP, pipes, subprocesses,
# TLS, sendfile) on our loop, for every Python 3.11-3.15, and a table of the counts.
#
# Usage: sh tools/run_beyond_tcp_compat.sh SRC [VERSION ...]
#   SRC      the asynciodepth source tree (holds asynciodepth/), e.g. a merged src
#   VERSION  default: 3.11.7 3.12.1 3.13.0 3.14.10 3.15.2 (3.11-3.13 from pyenv,
#            3.14/3.15 in the sid chroot, which binds /work: SRC and this checkout
#            must lie under /work for them; see tools/pythons.sh)
# Environment:
#   STDLIB=1            asyncio's own loop instead (the baseline; SRC is then unused)
#   ASYNCIODEPTH_LOOP   module:Class of ours to test (default asynciodepth:EventLoop)
#   OUT                 where the results go (default ./baseline-beyond-tcp): per
#                       version OUT/<version>[-stdlib].json (--json), .txt (the
#                       runner's table and failing ids), and a failures dir (for
#                       3.14/3.15 an OUT outside /work is the chroot's: $sid/OUT)
#   MODULES             the modules (default: the 7 below)
#   TIMEOUT_PER_TEST    default 20 s (a longer test is a hang)
# Prints, after all versions: run/pass/fail/err/skip/hang/ours per module and version.
# Run from the checkout's top; `nice` it on a shared machine. About 2-4 min per
# version on stdlib; on ours, hangs (20 s each) make it longer.
set -u
top=$(pwd)
if [ $# -lt 1 ]; then
  echo "usage: sh tools/run_beyond_tcp_compat.sh SRC [VERSION ...]" >&2
  exit 2
fi
src=$(cd "$1" && pwd) || exit 2
shift
versions=${*:-3.11.7 3.12.1 3.13.0 3.14.10 3.15.2}
modules=${MODULES:-test_events test_streams test_sock_lowlevel test_subprocess \
test_sendfile test_ssl test_sslproto}
out=${OUT:-$top/baseline-beyond-tcp}
mkdir -p "$out"
out=$(cd "$out" && pwd)
sid=/var/cache/asynciodepth/sid
if [ "${STDLIB:-}" = 1 ]; then
  loop="--stdlib"; suffix=-stdlib
else
  loop="--src $src"; suffix=
fi
opts="--timeout-per-test ${TIMEOUT_PER_TEST:-20} --timeout-per-module 900 -v"
jsons=
for v in $versions; do
  # seen: where the files the runner writes are seen from here. Why: in the chroot
  # only /work is the host's; an OUT elsewhere (e.g. /tmp) is $sid/OUT from here.
  seen=$out
  case $v in
    3.14.*) py="chroot $sid python3.14" ;;
    3.15.*) py="chroot $sid python3.15" ;;
    *) py="env PYENV_VERSION=$v python3" ;;
  esac
  case $v:$out in
    3.1[45].*:/work/*) ;;
    3.1[45].*) seen=$sid$out; mkdir -p "$seen" ;;
  esac
  name=$v$suffix
  echo "== Python $v ($name): $modules" >&2
  rm -rf "$seen/$name-failures"
  # shellcheck disable=SC2086  # the options and modules are word lists
  $py "$top/tools/run_test_asyncio.py" $loop $opts --json "$out/$name.json" \
    --failures-dir "$out/$name-failures" $modules > "$out/$name.txt" 2>&1
  sed -n '/^TOTAL/p' "$out/$name.txt" >&2
  jsons="$jsons $seen/$name.json"
done
# shellcheck disable=SC2086
python3 - $jsons <<'EOF'
import json, os, sys

print(f"{'module':22} {'python':8} {'loop':6} {'run':>5} {'pass':>5} {'fail':>5} "
      f"{'err':>5} {'skip':>5} {'hang':>5} {'ours':>5} {'stdlib':>6}")
print("-" * 85)
rows = []
for path in sys.argv[1:]:
    if not os.path.exists(path):
        print(f"{os.path.basename(path)}: no result (the run failed: see its .txt)")
        continue
    with open(path) as f:
        saved = json.load(f)
    for module in saved["modules"]:
        rows.append((module["module"], saved["python"], saved["mode"], module["counts"]))
for module, python, mode, c in sorted(
    rows, key=lambda r: (r[0], tuple(map(int, r[1].split("."))))
):
    hang = c["hang"] + c["crash"]
    print(f"{module:22} {python:8} {mode:6} {c['run']:5} {c['passed']:5} "
          f"{c['failed']:5} {c['errors']:5} {c['skipped']:5} {hang:5} {c['ours']:5} {c['stdlib']:6}")
print("(hang includes crashes; ours / stdlib = tests not skipped that made our loop /"
      " asyncio's real loop: on ours, stdlib must be 0)")
EOF
