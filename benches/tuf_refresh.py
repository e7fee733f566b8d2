"""python-tuf's client (tuf.ngclient.Updater) timed on a repository in a directory: a refresh
from scratch (a fresh metadata directory each run), then, when a target name is given,
get_targetinfo for it. Timed inside Python, so interpreter start-up is not counted. The
reference half of benches/tuf_refresh.sh.

    python3 tuf_refresh.py METADATA_DIR RUNS [TARGET]

Prints the mean time per run in nanoseconds."""

import shutil
import sys
import tempfile
import time

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface


class Files(FetcherInterface):
    def _fetch(self, url):
        try:
            with open(url[len("file://"):], "rb") as f:
                return iter([f.read()])
        except FileNotFoundError:
            raise DownloadHTTPError("not found", 404)


metadata, runs = sys.argv[1], int(sys.argv[2])
target = sys.argv[3] if len(sys.argv) > 3 else None
root = open(metadata + "/1.root.json", "rb").read()
times = []
for _ in range(runs):
    d = tempfile.mkdtemp()
    t = time.perf_counter()
    u = Updater(metadata_dir=d, metadata_base_url="file://" + metadata + "/",
                target_base_url="file:///nonexistent/", bootstrap=root, fetcher=Files())
    u.refresh()
    if target is not None:
        assert u.get_targetinfo(target) is not None, target
    times.append(time.perf_counter() - t)
    shutil.rmtree(d)
print(int(sum(times) / len(times) * 1e9))
