"""TUF from Python: refresh through a root rotation, resolve a target to a verified package,
download it and read the Trust Center; a changed target and a timestamp rollback are refused,
the trusted state unchanged. Over HTTP (a server in the test): a sink that raises is an
``IoError``, a stalled server a ``TufFetchError`` that names the progress timeout, an
unfollowed redirect one that names its status and ``Location``."""

import functools
import http.server
import os
import shutil
import tempfile
import threading
import unittest

import ota
from helpers import FIXTURES

NOW = 1_776_238_357_000


def client(name, state):
    d = os.path.join(FIXTURES, "tuf", name)
    with open(os.path.join(d, "trusted", "root.json"), "rb") as f:
        root = f.read()
    return ota.TufClient(root, os.path.join(d, "repo", "metadata"), os.path.join(d, "repo", "targets"), state)


class Repository(http.server.SimpleHTTPRequestHandler):
    """Serves a repository directory; ``redirect`` answers ``timestamp.json`` with a 300 and a
    Location instead, and ``stall`` sends a target's head and part of its body, then nothing
    until ``release`` is set."""

    redirect = False
    stall = False
    release = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.redirect and self.path.endswith("/timestamp.json"):
            self.send_response(300)
            self.send_header("Location", "http://mirror.invalid/timestamp.json")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.stall and "/targets/" in self.path:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(bytes(1000))
            self.wfile.flush()
            self.release.wait(60)
        else:
            super().do_GET()


def serving(directory, **behaviour):
    """A server for ``directory`` on loopback, in a thread: ``(server, base URL)``."""
    handler = type("Handler", (Repository,), {**behaviour, "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=directory))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def root_of(name):
    with open(os.path.join(FIXTURES, "tuf", name, "trusted", "root.json"), "rb") as f:
        return f.read()


class Tuf(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.work)

    def test_refresh_resolve_download_trust_center(self):
        state = os.path.join(self.work, "state")
        with client("rotation-good", state) as c, c.refresh(NOW) as repo:
            self.assertEqual(sorted(os.listdir(state)), ["root.json", "snapshot.json", "targets.json", "timestamp.json"])
            pkg, length = repo.resolve("fw.enc")
            with pkg:
                d = pkg.to_dict()
                self.assertTrue(d["id"].startswith("pkg_"))
                self.assertEqual(d["package"]["name"], "temp-sensor-fw")
                self.assertEqual(d["package"]["size_bytes"], length)
            chunks = []
            self.assertEqual(repo.download("fw.enc", chunks.append), length)
            out = os.path.join(self.work, "fw.enc")
            repo.download_file("fw.enc", out)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), b"".join(chunks))
            tc = repo.trust_center()
            self.assertEqual([r["role"] for r in tc["roles"]], ["root", "timestamp", "snapshot", "targets"])
            self.assertEqual(tc["roles"][0]["version"], 2)
            self.assertEqual(tc["targets"][0]["name"], "fw.enc")
            with self.assertRaises(ota.TufUnsafeTargetNameError):
                repo.resolve("../../etc/passwd")
            with self.assertRaises(ota.TufTargetNotFoundError):
                repo.resolve("nope")

    def test_a_changed_target_is_refused_and_not_written(self):
        with client("target-bytes", os.path.join(self.work, "s")) as c, c.refresh(NOW) as repo:
            out = os.path.join(self.work, "bad.enc")
            with self.assertRaises(ota.TufTargetMismatchError) as e:
                repo.download_file("fw.enc", out)
            self.assertIn("fw.enc", str(e.exception))
            self.assertFalse(os.path.exists(out))

    def test_a_timestamp_rollback_is_refused_and_the_state_kept(self):
        state = os.path.join(self.work, "state")
        shutil.copytree(os.path.join(FIXTURES, "tuf", "rollback-timestamp", "trusted"), state)
        with open(os.path.join(state, "timestamp.json"), "rb") as f:
            before = f.read()
        with client("rollback-timestamp", state) as c:
            with self.assertRaises(ota.TufRollbackError):
                c.refresh(NOW)
            with self.assertRaises(ota.TufExpiredError):
                # The same client two years on: the trusted root itself has expired.
                client("rotation-good", os.path.join(self.work, "other")).refresh(NOW + 2 * 365 * 86_400_000)
        with open(os.path.join(state, "timestamp.json"), "rb") as f:
            self.assertEqual(f.read(), before)

    def http_client(self, base, **kwargs):
        return ota.TufClient(root_of("rotation-good"), f"{base}/metadata", f"{base}/targets", **kwargs)

    def test_a_sink_that_raises_is_an_io_error(self):
        server, base = serving(os.path.join(FIXTURES, "tuf", "rotation-good", "repo"))
        try:
            with self.http_client(base) as c, c.refresh(NOW) as repo:

                def full(data):
                    raise OSError("no space left")

                with self.assertRaises(ota.IoError) as e:
                    repo.download("fw.enc", full)
                self.assertNotIsInstance(e.exception, ota.TufFetchError)
                self.assertIn("writing target fw.enc", str(e.exception))
        finally:
            server.shutdown()
            server.server_close()

    def test_a_tuf_call_inside_a_download_sink_is_refused_and_leaves_the_client_usable(self):
        server, base = serving(os.path.join(FIXTURES, "tuf", "rotation-good", "repo"))
        try:
            with self.http_client(base) as c, c.refresh(NOW) as repo:
                inner = []

                def nested(data):
                    try:
                        c.refresh(NOW).close()
                    except ota.InvalidArgumentError as e:
                        inner.append(str(e))
                        raise

                with self.assertRaises(ota.IoError):
                    repo.download("fw.enc", nested)
                self.assertIn("ota_tuf_download's write callback", inner[0])
                # Nothing was left unusable: the client refreshes, the repository downloads.
                with c.refresh(NOW) as again:
                    self.assertGreater(again.download("fw.enc", lambda data: None), 0)
                self.assertGreater(repo.download("fw.enc", lambda data: None), 0)
        finally:
            server.shutdown()
            server.server_close()

    def test_a_stalled_server_is_a_fetch_error_naming_the_progress_timeout(self):
        server, base = serving(os.path.join(FIXTURES, "tuf", "rotation-good", "repo"), stall=True)
        try:
            with self.http_client(base, progress_timeout_ms=300) as c, c.refresh(NOW) as repo:
                got = []
                with self.assertRaises(ota.TufFetchError) as e:
                    repo.download("fw.enc", got.append)
                message = str(e.exception)
                self.assertIn("no progress for 0.3 s (the progress timeout)", message)
                self.assertIn("4 tries in a row failed", message)
                self.assertNotIn("decoding", message)
                self.assertEqual(sum(map(len, got)), 1000)
        finally:
            server.RequestHandlerClass.func.release.set()
            server.shutdown()
            server.server_close()

    def test_an_unfollowed_redirect_is_a_fetch_error_naming_its_status_and_location(self):
        server, base = serving(os.path.join(FIXTURES, "tuf", "rotation-good", "repo"), redirect=True)
        try:
            with self.http_client(base) as c:
                with self.assertRaises(ota.TufFetchError) as e:
                    c.refresh(NOW)
                self.assertIn("HTTP 300 Multiple Choices, not followed (Location: http://mirror.invalid/timestamp.json)",
                              str(e.exception))
        finally:
            server.shutdown()
            server.server_close()

    def test_a_progress_timeout_of_zero_is_refused(self):
        with self.assertRaises(ota.InvalidArgumentError):
            client_ = self.http_client("http://127.0.0.1:9", progress_timeout_ms=0)
            client_.close()


if __name__ == "__main__":
    unittest.main()
