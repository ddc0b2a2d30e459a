# Stubs for huey.contrib.djhuey (Huey's Django integration; huey ships no types).
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from huey import Huey, TaskWrapper

_P = ParamSpec("_P")
_R = TypeVar("_R")

HUEY: Huey

def task(
    retries: int = ...,
    retry_delay: float = ...,
    priority: int | None = ...,
    context: bool = ...,
    name: str | None = ...,
    expires: float | timedelta | datetime | None = ...,
    **kwargs: Any,
) -> Callable[[Callable[_P, _R]], TaskWrapper[_P, _R]]: ...
def periodic_task(
    validate_datetime: Callable[[datetime], bool],
    retries: int = ...,
    retry_delay: float = ...,
    priority: int | None = ...,
    context: bool = ...,
    name: str | None = ...,
    expires: float | timedelta | datetime | None = ...,
    **kwargs: Any,
) -> Callable[[Callable[_P, _R]], TaskWrapper[_P, _R]]: ...

# Like task / periodic_task, and close the task's database connection afterwards.
db_task = task
db_periodic_task = periodic_task

# Hooks run by each consumer worker when it starts / stops.
def on_startup(name: str | None = ...) -> Callable[[Callable[[], None]], Callable[[], None]]: ...
def on_shutdown(name: str | None = ...) -> Callable[[Callable[[], None]], Callable[[], None]]: ...
