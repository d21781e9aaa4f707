"""asynciodepth: the package tangled from the book "AsyncIO In Depth"."""
from .futures import Future, sleep
from .events import Handle, TimerHandle, VirtualClock, LoopObserver
from .base_events import BaseEventLoop
from .tasks import Task, eager_task_factory
from .runners import EventLoop, EventLoopPolicy, new_event_loop, run
