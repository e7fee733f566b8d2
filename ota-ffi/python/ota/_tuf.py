"""TUF: a client that refreshes a repository from a trusted root, resolves targets to verified
packages, downloads them, and shows the Trust Center."""

import ctypes
import json as _json
from typing import Any, Callable, Dict, Optional, Tuple

from ._ffi import as_text, call, lib, text, writer
from ._managed import INT, PATH, TEXT, Managed, PathInput, TextInput, arg
from ._sign import VerifiedPackage

__all__ = ["TufClient", "TufRepo"]


class TufClient(Managed):
    """A trusted root, where metadata and targets come from (``http(s)://`` or ``file://`` URLs,
    or directories), and optionally a state directory that keeps the trusted metadata under
    the name of its role (``root.json``, ``timestamp.json``, ``snapshot.json``,
    ``targets.json``, and each delegated role a search visited, percent-encoded), each written
    as soon as its role verified.

    Over HTTP a try fails when it makes no progress for ``progress_timeout_ms`` (default
    30000: no answer, or no body bytes, for that long), never for the total time of a
    transfer; a download that stalls or breaks off is resumed where it stopped, and a fetch
    fails (``TufFetchError``) after 4 tries in a row without progress."""

    _free = lib.ota_tuf_client_free

    def __init__(
        self,
        root: TextInput,
        metadata_url: PathInput,
        targets_url: PathInput,
        state_dir: Optional[PathInput] = None,
        progress_timeout_ms: Optional[int] = None,
    ) -> None:
        r, rn = as_text(arg("root", root, TEXT))
        m, mn = as_text(arg("metadata_url", metadata_url, PATH))
        t, tn = as_text(arg("targets_url", targets_url, PATH))
        s, sn = as_text(arg("state_dir", state_dir, PATH, optional=True) or b"")
        timeout = arg("progress_timeout_ms", progress_timeout_ms, INT, optional=True)
        h = ctypes.c_void_p()
        call(lib.ota_tuf_client_new(r, rn, m, mn, t, tn, s, sn, ctypes.byref(h)))
        super().__init__(h.value)
        if timeout is not None:
            call(lib.ota_tuf_client_set_progress_timeout(self.handle, timeout))

    def refresh(self, now: int) -> "TufRepo":
        """Refreshes at ``now`` (Unix ms); raises ``TufRollbackError``, ``TufExpiredError``, ...
        for each attack, keeping the roles that verified before it."""
        h = ctypes.c_void_p()
        call(lib.ota_tuf_refresh(self.handle, arg("now", now, INT), ctypes.byref(h)))
        return TufRepo(h.value)


class TufRepo(Managed):
    """A refreshed, verified repository."""

    _free = lib.ota_tuf_repo_free

    def resolve(self, name: TextInput) -> Tuple[VerifiedPackage, int]:
        """``(VerifiedPackage, length)`` for target ``name``, searching the delegations that
        cover it (only those roles are loaded)."""
        n, nn = as_text(arg("name", name, TEXT))
        h = ctypes.c_void_p()
        length = ctypes.c_uint64(0)
        call(lib.ota_tuf_resolve(self.handle, n, nn, ctypes.byref(h), ctypes.byref(length)))
        return VerifiedPackage(h.value), length.value

    def download(self, name: TextInput, sink: Callable[[bytes], Any]) -> int:
        """Streams target ``name`` to ``sink(bytes)``, verified as it goes; on an exception
        what the sink got must be discarded, and an exception in the sink raises ``IoError``.
        Returns the length."""
        n, nn = as_text(arg("name", name, TEXT))
        if not callable(sink):
            raise TypeError(f"sink must be callable, not {type(sink).__name__}")
        cb = writer(sink)
        written = ctypes.c_uint64(0)
        call(lib.ota_tuf_download(self.handle, n, nn, cb, None, ctypes.byref(written)))
        return written.value

    def download_file(self, name: TextInput, path: PathInput) -> None:
        """Downloads target ``name`` to ``path``, written only when it all verified."""
        n, nn = as_text(arg("name", name, TEXT))
        p, pn = as_text(arg("path", path, PATH))
        call(lib.ota_tuf_download_file(self.handle, n, nn, p, pn))

    def trust_center(self) -> Dict[str, Any]:
        """``{"roles": [...], "targets": [...]}``: what was signed, and by which keys."""
        center: Dict[str, Any] = _json.loads(text(lib.ota_tuf_trust_center, self.handle))
        return center
