"""Build the compiled asynciodepth: the tangled modules compiled by Cython, as they are.

    .venv-compiled/bin/python tools/build_compiled.py [--out build/compiled] [--jobs N]

Copies ``src/asynciodepth`` whole to ``OUT/asynciodepth`` and compiles the loop's
modules there in place with Cython in pure-Python mode: each ``name.so`` (``.pyd``
elsewhere) lands beside its ``name.py``, and Python's import system takes the
extension first. The copy is then importable as a whole package by putting ``OUT``
first on ``PYTHONPATH``; nothing in ``src`` changes, and there is no ``.pyx``: the
notebooks stay the only source. ``OUT/asynciodepth/_compiled.json`` lists the modules
compiled (``tools/compiled_plugin.py`` checks them at the start of a test session).

Modules are compiled unmodified. One that does not compile, or does not run correctly
compiled, goes into ``EXCLUDED`` with the reason, and stays a ``.py`` in the build.

Needs Cython and setuptools (``requirements-compiled.txt``) and a C compiler with
Python's headers; works wherever setuptools builds extensions (Linux, macOS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "asynciodepth"

# The loop and its hot paths, then the rest of the loop's modules, then the tracer's
# hot path (its recorder).
COMPILED = [
    "events", "base_events", "instrumentation", "futures", "tasks",
    "selector_events", "runners", "io_events", "pollers", "transports",
    "connections", "unix_events",
    "datagrams", "pipes", "sendfile", "subprocesses", "tls", "tls_transport",
    "loop", "taskgroups", "timeouts",
    "trace.recorder",
]  # fmt: skip

# Modules kept as Python, with the reason (written into _compiled.json). Every loop
# module compiled as it is; none had to be excluded.
EXCLUDED = {
    "tangle": "the tangler, a build tool, not part of the loop",
    **{
        name: "an early chapter's demonstration, not part of the loop"
        for name in (
            "hello", "coroutines", "generators", "asyncgens", "coroutine_classes",
            "patterns",
        )
    },
    **{
        f"trace.{name}": "the tracer outside its hot path (the recorder is compiled)"
        for name in ("api", "coroutines", "format", "formatter", "loop", "timeline")
    },
}  # fmt: skip

# Why each directive:
#   language_level=3     the modules are Python 3 (Cython 3's default, said explicitly).
#   binding=True         functions are cyfunctions that behave as Python functions:
#                        descriptors, __name__/__qualname__, inspect.signature, pickling.
#   annotation_typing=False  the modules' annotations are documentation for readers and
#                        mypy, not C types: with it on, Cython turns `x: int` into a
#                        checked exact type and rejects None or subclasses where Python
#                        accepts them: a semantic change, for no gain (measured with
#                        events, base_events, instrumentation, selector_events, futures
#                        and tasks compiled, callgrind, workload a: 175.1M -> 178.0M
#                        instructions per 20,000 callbacks, +1.6%).
#   emit_code_comments=False  smaller C files, faster C compile.
DIRECTIVES = {
    "language_level": 3,
    "binding": True,
    "annotation_typing": False,
    "emit_code_comments": False,
}


def copy_package(out: Path) -> Path:
    """A fresh copy of src/asynciodepth in out, without caches; returns the package dir."""
    package = out / "asynciodepth"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(SRC, package, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    # Why: build/ is not in the repository's .gitignore; this keeps the whole build
    # directory out of git without touching the repository's own ignore file.
    (out / ".gitignore").write_text("*\n")
    return package


def build(out: Path, modules: list[str], jobs: int, directives: dict) -> list[str]:
    """Cythonize and compile modules in place in out; returns the modules built."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    # Why -g0: Python's own CFLAGS carry -g; the debug information of these large C
    # files is most of gcc's time (and of the .so's size), and nobody debugs them in
    # gdb. gcc and clang (Linux, macOS) both take it, and the last -g wins.
    extensions = [
        Extension(
            f"asynciodepth.{name}",
            [str(Path("asynciodepth", *name.split(".")).with_suffix(".py"))],
            extra_compile_args=["-g0"],
        )
        for name in modules
    ]
    here = os.getcwd()
    os.chdir(out)
    try:
        ext_modules = cythonize(
            extensions,
            compiler_directives=directives,
            build_dir="c",
            nthreads=jobs,
            quiet=True,
            force=True,
        )
        distribution = Distribution({"name": "asynciodepth", "ext_modules": ext_modules})
        command = distribution.get_command_obj("build_ext")
        command.inplace = True
        command.build_temp = "tmp"
        command.parallel = jobs
        distribution.run_command("build_ext")
    finally:
        os.chdir(here)
    return [ext.name for ext in ext_modules]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "compiled")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--modules", help="comma-separated subset of the compiled modules (default: all)"
    )
    parser.add_argument(
        "--directive", action="append", default=[], metavar="NAME=VALUE",
        help="override a Cython directive (to measure one), e.g. annotation_typing=True",
    )  # fmt: skip
    args = parser.parse_args()
    modules = args.modules.split(",") if args.modules else COMPILED
    unknown = sorted(set(modules) - set(COMPILED))
    if unknown:
        parser.error(f"not a compiled module: {', '.join(unknown)}")
    directives = dict(DIRECTIVES)
    for item in args.directive:
        name, _, value = item.partition("=")
        directives[name] = {"True": True, "False": False}.get(value, value)
    out = args.out.resolve()
    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    package = copy_package(out)
    built = build(out, modules, args.jobs, directives)
    manifest = {
        "modules": sorted(built),
        "excluded": EXCLUDED,
        "directives": directives,
        "python": sys.version.split()[0],
    }
    (package / "_compiled.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(
        f"build_compiled: {len(built)} modules compiled into {out} "
        f"in {time.monotonic() - start:.0f} s (put it first on PYTHONPATH)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
