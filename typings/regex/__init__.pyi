# The part of the `regex` module LoopKit uses (verify.checks' regular expressions,
# searched with a timeout); the module ships no `py.typed`.
from typing import Any

class error(Exception):
    msg: str
    pos: int | None

class Match:
    def group(self, *groups: int | str) -> Any: ...
    def start(self, group: int | str = 0) -> int: ...
    def end(self, group: int | str = 0) -> int: ...
    def span(self, group: int | str = 0) -> tuple[int, int]: ...

class Pattern:
    pattern: str
    def search(
        self,
        string: str,
        pos: int | None = None,
        endpos: int | None = None,
        concurrent: bool | None = None,
        timeout: float | None = None,
    ) -> Match | None: ...

def compile(pattern: str, flags: int = 0, **kwargs: Any) -> Pattern: ...
