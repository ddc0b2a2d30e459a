# Stubs for whitenoise.compress (WhiteNoise 6.x ships no py.typed marker).
class Compressor:
    SKIP_COMPRESS_EXTENSIONS: tuple[str, ...]
    def __init__(
        self,
        extensions: list[str] | None = ...,
        use_gzip: bool = ...,
        use_brotli: bool = ...,
        log: object = ...,
        quiet: bool = ...,
    ) -> None: ...
