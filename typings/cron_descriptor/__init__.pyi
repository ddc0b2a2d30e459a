# What runs/starts.py uses of cron-descriptor 2.x (it ships no py.typed).
class Options:
    use_24hour_time_format: bool | None
    def __init__(
        self,
        *,
        verbose: bool = ...,
        day_of_week_start_index_zero: bool = ...,
        use_24hour_time_format: bool | None = ...,
        locale_code: str | None = ...,
        locale_location: str | None = ...,
    ) -> None: ...

class ExpressionDescriptor:
    def __init__(
        self, expression: str, options: Options | None = ..., **kwargs: object
    ) -> None: ...
    def get_description(self) -> str: ...
