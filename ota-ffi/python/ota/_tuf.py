"""TUF: a client that refreshes a repository from a trusted root, resolves targets to verified
packages, downloads them, and shows the Trust Center."""

import ctypes
import json as _json
import os

from ._ffi import as_bytes, call, lib, text, writer
from ._managed import Managed


class TufClient(Managed):
    """A trusted root, where metadata and targets come from (``http(s)://`` or ``file://`` URLs,
    or directories), and optionally a state directory that keeps the trusted metadata under
    its plain names (``root.json``, ``timestamp.json``, ``snapshot.json``, ``targets.json``)."""

    _free = lib.ota_tuf_client_free

    def __init__(self, root, metadata_url, targets_url, state_dir=None):
        rptr, rn, _r = as_bytes(root)
        mptr, mn, _m = as_bytes(os.fspath(metadata_url))
        tptr, tn, _t = as_bytes(os.fspath(targets_url))
        sptr, sn, _s = as_bytes(os.fspath(state_dir) if state_dir is not None else b"")
        h = ctypes.c_void_p()
        call(lib.ota_tuf_client_new(rptr, rn, mptr, mn, tptr, tn, sptr, sn, ctypes.byref(h)))
        super().__init__(h.value)

    def refresh(self, now):
        """Refreshes at ``now`` (Unix ms); raises ``TufRollbackError``, ``TufExpiredError``, ...
        for each attack, leaving the trusted state as it was."""
        h = ctypes.c_void_p()
        call(lib.ota_tuf_refresh(self.handle, now, ctypes.byref(h)))
        return TufRepo(h.value)


class TufRepo(Managed):
    """A refreshed, verified repository."""

    _free = lib.ota_tuf_repo_free

    def resolve(self, name):
        """``(VerifiedPackage, length)`` for target ``name``."""
        from . import VerifiedPackage

        nptr, nn, _n = as_bytes(name)
        h = ctypes.c_void_p()
        length = ctypes.c_uint64(0)
        call(lib.ota_tuf_resolve(self.handle, nptr, nn, ctypes.byref(h), ctypes.byref(length)))
        return VerifiedPackage(h.value), length.value

    def download(self, name, sink):
        """Streams target ``name`` to ``sink(bytes)``, verified as it goes; on an exception
        what the sink got must be discarded. Returns the length."""
        nptr, nn, _n = as_bytes(name)
        cb = writer(sink)
        written = ctypes.c_uint64(0)
        call(lib.ota_tuf_download(self.handle, nptr, nn, cb, None, ctypes.byref(written)))
        return written.value

    def download_file(self, name, path):
        """Downloads target ``name`` to ``path``, written only when it all verified."""
        nptr, nn, _n = as_bytes(name)
        pptr, pn, _p = as_bytes(os.fspath(path))
        call(lib.ota_tuf_download_file(self.handle, nptr, nn, pptr, pn))

    def trust_center(self):
        """``{"roles": [...], "targets": [...]}``: what was signed, and by which keys."""
        return _json.loads(text(lib.ota_tuf_trust_center, self.handle))
