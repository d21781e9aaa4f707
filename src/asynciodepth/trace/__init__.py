"""asynciodepth.trace: see what every task did, and when (chapter "Tracing").

``tracing()`` records either through our loop's observer hook (give it the
loop) or, on any loop, through ``sys.monitoring`` (3.12+) or ``sys.setprofile``
(3.11). Run ``python -m asynciodepth.trace script.py`` for the command line.
"""

from asynciodepth.trace.api import Trace, traced, tracing
from asynciodepth.trace.coroutines import MONITORING, CoroutineTracer, TracingError
from asynciodepth.trace.format import Recorder, TraceSizeWarning, load_trace
from asynciodepth.trace.loop import LoopTracer
from asynciodepth.trace.timeline import Summary, plot_timeline, summarize

__all__ = [
    "MONITORING",
    "CoroutineTracer",
    "LoopTracer",
    "Recorder",
    "Summary",
    "Trace",
    "TraceSizeWarning",
    "TracingError",
    "load_trace",
    "plot_timeline",
    "summarize",
    "traced",
    "tracing",
]
