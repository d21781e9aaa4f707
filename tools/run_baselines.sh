#!/bin/sh
# CPython's test_asyncio on asynciodepth, on every Python 3.11-3.15, and the same on
# asyncio's own loop; writes baseline/<version>/ (see benchmarks/COMPAT.md):
#   SUMMARY.txt, <module>.txt    our loop: the table, failing ids per module
#   stdlib/SUMMARY.txt, stdlib/<module>.txt   the same on asyncio's loop
#   ours-testloop/...   test_futures, test_tasks, test_unix_events, test_pep492,
#                       test_runners with --ours-testloop --ours-base-loop
# Usage: sh tools/run_baselines.sh [SRC] [VERSION ...]   (SRC defaults to ./src)
# Run from the worktree's top; /work is bind-mounted in the sid chroot (3.14, 3.15).
set -u
top=$(pwd)
src=$(cd "${1:-src}" && pwd); [ $# -gt 0 ] && shift
versions=${*:-3.11.7 3.12.1 3.13.0 3.14.10 3.15.2}
# ONLY=testloop: redo only the ours-testloop part.
only=${ONLY:-}
sid=/var/cache/asynciodepth/sid
for v in $versions; do
  case $v in
    3.14.*) py="chroot $sid python3.14" ;;
    3.15.*) py="chroot $sid python3.15" ;;
    *) py="env PYENV_VERSION=$v python3" ;;
  esac
  out=$top/baseline/$v
  opts="--timeout-per-test 10 --timeout-per-module 300 -v"
  if [ "$only" != testloop ]; then
    rm -rf "$out"; mkdir -p "$out/stdlib"
    $py "$top/tools/run_test_asyncio.py" --src "$src" $opts --failures-dir "$out" \
      --json "/tmp/compat-$v.json" > "$out/SUMMARY.txt" 2>&1
    $py "$top/tools/run_test_asyncio.py" --stdlib $opts --failures-dir "$out/stdlib" \
      --json "/tmp/compat-$v-stdlib.json" > "$out/stdlib/SUMMARY.txt" 2>&1
  fi
  rm -rf "$out/ours-testloop"
  mkdir -p "$out/ours-testloop"
  $py "$top/tools/run_test_asyncio.py" --src "$src" --ours-testloop --ours-base-loop \
    $opts --failures-dir "$out/ours-testloop" test_futures test_tasks test_unix_events \
    test_pep492 test_runners \
    > "$out/ours-testloop/SUMMARY.txt" 2>&1
  sed -n '/^TOTAL/p' "$out/SUMMARY.txt" "$out/stdlib/SUMMARY.txt" \
    "$out/ours-testloop/SUMMARY.txt"
done
