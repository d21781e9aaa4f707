"""The command line, ``python -m asynciodepth.trace``: chapter "Tracing".

Builds on ``trace.api``. It runs a script or a module under ``tracing()`` and
writes the trace (and, if asked, a timeline figure), even when the program
fails or is interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import traceback

from asynciodepth.trace.api import tracing

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run a program under the tracer; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m asynciodepth.trace",
        description="Trace every task of an asyncio program into Chrome Trace "
        "Event JSON (open it in https://ui.perfetto.dev).",
    )
    parser.add_argument("-o", "--output", default="trace.json",
                        help="the trace file to write (default: trace.json)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the timeline")
    parser.add_argument("--max-bytes", type=int, default=None,
                        help="stop recording at this many bytes")
    parser.add_argument("--summary", action="store_true",
                        help="print steps and times per task at the end")
    parser.add_argument("-m", dest="module", help="run a module, like python -m")
    parser.add_argument("program", nargs=argparse.REMAINDER,
                        help="script.py [args] (or the module's args with -m)")
    args = parser.parse_args(argv)
    if args.module is None and not args.program:
        parser.error("give a script to run, or -m module")

    if args.module is not None:
        sys.argv = [args.module, *args.program]
    else:
        sys.argv = list(args.program)
    status = 0
    trace = tracing(args.output, max_bytes=args.max_bytes)
    try:
        with trace:
            if args.module is not None:
                runpy.run_module(args.module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else (exit.code is not None)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    events = trace.events
    print(f"trace: {len(events)} events written to {args.output}", file=sys.stderr)
    if args.summary:
        print(trace.summary(), file=sys.stderr)
    if args.plot and any(e.get("ph") == "X" for e in events):
        import matplotlib

        matplotlib.use("Agg")
        trace.plot().savefig(args.plot)
        print(f"trace: timeline drawn in {args.plot}", file=sys.stderr)
    return status


if __name__ == "__main__" and "get_ipython" not in globals():
    sys.exit(main())
