"""The client against a real lgapd: acks, typed refusals, batching with bounded in-flight, results
after the slow joiner, pull mode. lgapd is the release build beside the repository (``$LGAPD`` to
override); the pack is the default pack's classifier alone, so jobs take milliseconds.

Run: python -m unittest discover -s clients/python/tests   (from the repository, after swift build)
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import lgap_client as lgap

REPO = Path(__file__).resolve().parents[3]
LGAPD = os.environ.get("LGAPD", str(REPO / ".build" / "release" / "lgapd"))
SAMPLES = REPO / "models" / "cifar10-mini" / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """lgapd on loopback with a temporary database and the classifier-only pack."""

    def __init__(self, mode: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lgap-py-"))
        pack = self.dir / "pack"
        pack.mkdir()
        (pack / "classifier").symlink_to(REPO / "models" / "cifar10-mini" / "classifier")
        shutil.copy(REPO / "models" / "cifar10-mini" / "pack.json", pack / "pack.json")
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.results = f"tcp://127.0.0.1:{free_port()}"
        (self.dir / "lgapd.toml").write_text('[daemon]\nthreads = 1\nnode = "py-test"\n[pipeline]\nmax_wait_ms = 2\n')
        self.log = open(self.dir / "stderr.log", "w")
        self.proc = subprocess.Popen(
            [LGAPD, "--config", str(self.dir / "lgapd.toml"), "--db", str(self.dir / "db.sqlite"), "--pack", str(pack),
             "--ingest", self.ingest, "--results", self.results, "--ingest-mode", mode],
            stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while "] ready" not in (self.dir / "stderr.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lgapd did not start:\n" + (self.dir / "stderr.log").read_text())
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


@unittest.skipUnless(Path(LGAPD).exists(), f"no lgapd at {LGAPD} (swift build -c release)")
class RouterModeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon("router")
        cls.png = sorted(SAMPLES.iterdir())[0]

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.daemon.stop() == 0

    def test_submit_ack_duplicate_and_typed_refusals(self) -> None:
        with lgap.Client(self.daemon.ingest, mode="router") as c:
            ack = c.submit(self.png, id="py-one", params={"seed": 3}, meta={"camera": "7"}, label="airplane")
            self.assertEqual(ack, lgap.Ack("py-one", "accepted"))
            self.assertEqual(c.submit(self.png, id="py-one").status, "duplicate")
            with self.assertRaises(lgap.errors.BadParams) as e:
                c.submit(self.png, id="py-bad", params={"strength": "strong"})
            self.assertEqual(e.exception.job_id, "py-bad")
            self.assertFalse(e.exception.retryable)
            with self.assertRaises(lgap.errors.EmptyImage):
                c.submit(b"", id="py-empty")
            with self.assertRaises(lgap.errors.InvalidID):
                c.submit(self.png, id="bad id with spaces")
            unchecked = c.submit(b"not an image", id="py-junk", check=False)
            self.assertEqual((unchecked.status, unchecked.reason), ("rejected", "unknown_format"))
            self.assertIsInstance(lgap.refusal("x", "some_future_reason", "m"), lgap.Rejected)

    def test_batch_with_bounded_in_flight_and_results(self) -> None:
        images = sorted(SAMPLES.iterdir())
        with lgap.Client(self.daemon.ingest) as c, lgap.Results(self.daemon.results) as results:
            results.wait_until_subscribed(c, images[0])
            jobs = [lgap.Job(images[i % len(images)], id=f"py-batch-{i}", label=images[i % len(images)].name.split("-")[0])
                    for i in range(120)]
            acks = c.submit_many(jobs, max_in_flight=16)
            self.assertEqual([a.id for a in acks], [j.id for j in jobs], "acks in submission order")
            self.assertTrue(all(a.status == "accepted" for a in acks), acks)
            got, missing = lgap.wait_for(results, [j.id for j in jobs], timeout=60)
            self.assertEqual(missing, [])
            self.assertTrue(all(r.status == "done" and r.label for r in got.values()))
            self.assertEqual(got["py-batch-0"].raw["params"]["seed"] >= 0, True)

    def test_unreachable_endpoint_times_out(self) -> None:
        with lgap.Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.5) as c:
            with self.assertRaises(lgap.Timeout):
                c.submit(self.png, id="py-nowhere")


@unittest.skipUnless(Path(LGAPD).exists(), f"no lgapd at {LGAPD} (swift build -c release)")
class PullModeTests(unittest.TestCase):
    def test_push_then_results(self) -> None:
        daemon = Daemon("pull")
        try:
            images = sorted(SAMPLES.iterdir())
            with lgap.Client(daemon.ingest, mode="pull") as c, lgap.Results(daemon.results) as results:
                results.wait_until_subscribed(c, images[0])
                ids = [c.send(img) for img in images]
                got, missing = lgap.wait_for(results, ids, timeout=60)
                self.assertEqual(missing, [])
        finally:
            self.assertEqual(daemon.stop(), 0)


if __name__ == "__main__":
    unittest.main()
