# Stubs for the part of Huey 3.x LoopKit uses (huey ships no types).
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)

class BaseStorage:
    def queue_size(self) -> int: ...
    def schedule_size(self) -> int: ...

class Result(Generic[_R_co]):
    id: str
    def get(
        self,
        blocking: bool = ...,
        timeout: float | None = ...,
        backoff: float = ...,
        max_delay: float = ...,
        revoke_on_timeout: bool = ...,
        preserve: bool = ...,
    ) -> _R_co: ...
    def __call__(
        self,
        blocking: bool = ...,
        timeout: float | None = ...,
        backoff: float = ...,
        max_delay: float = ...,
        revoke_on_timeout: bool = ...,
        preserve: bool = ...,
    ) -> _R_co: ...

class TaskWrapper(Generic[_P, _R]):
    name: str
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Result[_R]: ...
    def call_local(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def schedule(
        self,
        args: tuple[Any, ...] | None = ...,
        kwargs: dict[str, Any] | None = ...,
        eta: datetime | None = ...,
        delay: float | timedelta | None = ...,
        priority: int | None = ...,
        retries: int | None = ...,
        retry_delay: float | None = ...,
        expires: float | timedelta | datetime | None = ...,
        id: str | None = ...,
    ) -> Result[_R]: ...

_TaskDecorator = Callable[[Callable[_P, _R]], TaskWrapper[_P, _R]]

class Huey:
    name: str
    immediate: bool
    storage: BaseStorage
    def task(
        self,
        retries: int = ...,
        retry_delay: float = ...,
        priority: int | None = ...,
        context: bool = ...,
        name: str | None = ...,
        expires: float | timedelta | datetime | None = ...,
        **kwargs: Any,
    ) -> Callable[[Callable[_P, _R]], TaskWrapper[_P, _R]]: ...
    def periodic_task(
        self,
        validate_datetime: Callable[[datetime], bool],
        retries: int = ...,
        retry_delay: float = ...,
        priority: int | None = ...,
        context: bool = ...,
        name: str | None = ...,
        expires: float | timedelta | datetime | None = ...,
        **kwargs: Any,
    ) -> Callable[[Callable[_P, _R]], TaskWrapper[_P, _R]]: ...

class SqliteHuey(Huey): ...
class RedisHuey(Huey): ...
class MemoryHuey(Huey): ...

def crontab(
    minute: str = ...,
    hour: str = ...,
    day: str = ...,
    month: str = ...,
    day_of_week: str = ...,
    strict: bool = ...,
) -> Callable[[datetime], bool]: ...
