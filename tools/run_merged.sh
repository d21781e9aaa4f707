#!/bin/sh
# CPython's test_asyncio on a merged snapshot of asynciodepth, ours only (no stdlib
# baseline, no testloop part); writes baseline-merged/<version>/ (see benchmarks/COMPAT.md):
#   SUMMARY.txt, <module>.txt   default configuration: the table, failing ids per module
#   ours-base-loop/...          test_pep492 with --ours-base-loop (on ours, not internal)
#   python_tasks/...            the done-when modules with --loop-option python_tasks=True
# Usage: sh tools/run_merged.sh SRC [VERSION ...]
# PART=default or PART=python_tasks: only that part. Run from the worktree's top.
set -u
top=$(pwd)
src=$(cd "$1" && pwd); shift
versions=${*:-3.11.7 3.14.10 3.12.1 3.13.0 3.15.2}
part=${PART:-}
sid=/var/cache/asynciodepth/sid
opts="--timeout-per-test 10 --timeout-per-module 300 -v"
for v in $versions; do
  case $v in
    3.14.*) py="chroot $sid python3.14" ;;
    3.15.*) py="chroot $sid python3.15" ;;
    *) py="env PYENV_VERSION=$v python3" ;;
  esac
  out=$top/baseline-merged/$v
  if [ "$part" != python_tasks ]; then
    mkdir -p "$out/ours-base-loop"
    $py "$top/tools/run_test_asyncio.py" --src "$src" $opts --failures-dir "$out" \
      --json "/tmp/merged-$v.json" > "$out/SUMMARY.txt" 2>&1
    $py "$top/tools/run_test_asyncio.py" --src "$src" --ours-base-loop $opts \
      --failures-dir "$out/ours-base-loop" --json "/tmp/merged-$v-obl.json" \
      test_pep492 > "$out/ours-base-loop/SUMMARY.txt" 2>&1
    sed -n '/^TOTAL/p' "$out/SUMMARY.txt" "$out/ours-base-loop/SUMMARY.txt"
  fi
  if [ "$part" != default ]; then
    mods="test_taskgroups test_timeouts test_waitfor test_queues test_locks \
      test_futures2 test_context test_pep492 test_events test_streams test_sock_lowlevel"
    case $v in 3.11.*) ;; *) mods="$mods test_eager_task_factory" ;; esac
    rm -rf "$out/python_tasks"; mkdir -p "$out/python_tasks"
    $py "$top/tools/run_test_asyncio.py" --src "$src" --ours-base-loop \
      --loop-option python_tasks=True $opts --failures-dir "$out/python_tasks" \
      --json "/tmp/merged-$v-pt.json" $mods > "$out/python_tasks/SUMMARY.txt" 2>&1
    sed -n '/^TOTAL/p' "$out/python_tasks/SUMMARY.txt"
  fi
done
