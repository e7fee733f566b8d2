"""Python bindings for ota, through ctypes over libota (include/ota.h).

>>> import ota
>>> package = ota.Package.from_json(open("package.json").read())
>>> device = ota.Profile.from_json(open("device.json").read())
>>> report = ota.check(package, device)
>>> report["compatible"], [r["reason"] for r in report["rejections"]]

This file only re-exports. Each capability lives in the module named after it, in the order
the data flows:

- ``_lib``: finds and loads libota, declares every function; ``_ffi``: how bindings call it;
  ``_managed``: the base class of handle owners and the one argument check (``arg``)
- ``_errors``: ``OtaError``, ``ValidationError``, ``VerificationError`` and one exception class
  per ``ota_status`` under them
- ``_documents``: ``Manifest``, ``Package``, ``Profile``, ``validate_sbom``
- ``_sign``: ``SigningKey``, ``TrustedKeys``, ``sign``, ``verify``, ``verify_file``, ``VerifiedPackage``
- ``_seal``: ``Sealer``, ``Opener``, ``seal``, ``open_sealed``, ``open_file``, seal keys, registration
- ``_compat``: ``check``, ``check_fleet``
- ``_rollout``: ``Rollout``, ``audit_verify``
- ``_device``: ``DeviceIo``, ``Agent``, ``probe_run``
- ``_report``: ``ReportStatus``, ``report_status``
- ``_tuf``: ``TufClient``, ``TufRepo``
"""

from typing import List

from . import _compat, _device, _documents, _errors, _managed, _report, _rollout, _seal, _sign, _tuf
from ._compat import *  # noqa: F401,F403
from ._device import *  # noqa: F401,F403
from ._documents import *  # noqa: F401,F403
from ._errors import *  # noqa: F401,F403
from ._ffi import features, version
from ._managed import *  # noqa: F401,F403
from ._report import *  # noqa: F401,F403
from ._rollout import *  # noqa: F401,F403
from ._seal import *  # noqa: F401,F403
from ._sign import *  # noqa: F401,F403
from ._tuf import *  # noqa: F401,F403

__all__: List[str] = ["version", "features"]
for _module in (_managed, _errors, _documents, _sign, _seal, _compat, _rollout, _device, _report, _tuf):
    __all__ += _module.__all__
del _module
