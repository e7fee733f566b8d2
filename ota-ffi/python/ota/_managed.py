"""The base class of every object that owns a libota handle."""


class Managed:
    """Owns one handle and frees it exactly once: on ``close()``, at the end of a ``with``
    block, or when garbage-collected."""

    _free = None  # set by subclasses: the library's ota_<object>_free

    def __init__(self, handle):
        self._handle = handle

    @property
    def handle(self):
        """The raw handle; raises ValueError once closed."""
        if self._handle is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._handle

    def close(self):
        """Frees the handle. Closing twice is harmless."""
        handle, self._handle = self._handle, None
        if handle is not None:
            type(self)._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
