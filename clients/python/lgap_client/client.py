"""A producer and a subscriber for lgapd, on pyzmq alone.

Router mode (DEALER → lgapd's ROUTER) acknowledges every job once it is committed: ``submit`` returns
the ``Ack`` or raises the reason's typed error; ``submit_many`` keeps up to ``max_in_flight`` jobs
unacknowledged and matches acks by id. Pull mode (PUSH) has no acks: delivery is ZeroMQ's, and
backpressure blocks the sender when lgapd is busy.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import zmq

from .errors import Rejected, Timeout, refusal

ImageInput = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
# lgapd's id rule: checked here too, because lgapd cannot echo an id it refuses (its ack's id is "").
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class CurveKeys:
    """CURVE keys (Z85 text, as ``lgapctl keygen`` writes them): lgapd's public key, and this client's pair."""

    server_public: str
    public: str
    secret: str

    @classmethod
    def from_keygen_file(cls, server_public: str, path: Union[str, "os.PathLike[str]"]) -> "CurveKeys":
        """Reads ``lgapctl keygen --output``'s file (``public-key: …`` and ``secret-key: …`` lines)."""
        values: Dict[str, str] = {}
        for line in Path(path).read_text().splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                k, v = line.split(":", 1)
                values[k.strip().lower()] = v.strip()
        return cls(server_public, values["public-key"], values["secret-key"])

    def apply(self, socket: zmq.Socket) -> None:
        socket.curve_serverkey = self.server_public.encode()
        socket.curve_publickey = self.public.encode()
        socket.curve_secretkey = self.secret.encode()


@dataclass(frozen=True)
class Ack:
    """lgapd's answer to one job: ``accepted`` (committed, will be processed), ``duplicate`` (that id
    was accepted before: processed once), or ``rejected`` with a reason."""

    id: str
    status: str
    reason: Optional[str] = None
    message: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status in ("accepted", "duplicate")

    def raise_for_status(self) -> "Ack":
        if self.status == "rejected":
            raise refusal(self.id, self.reason, self.message)
        return self


@dataclass(frozen=True)
class Job:
    """One job for ``submit_many``. ``id`` defaults to a fresh UUID (acks are matched by id)."""

    image: ImageInput
    id: Optional[str] = None
    params: Optional[Mapping[str, Any]] = None
    meta: Optional[Mapping[str, Any]] = None
    label: Optional[str] = None
    format: str = "auto"


@dataclass(frozen=True)
class Result:
    """A published result: ``status`` done/rejected/failed, the label and confidence when done, the
    caption, the parameters used (with the seed) and everything else lgapd sent, in ``raw``."""

    id: str
    status: str
    label: Optional[str]
    confidence: Optional[float]
    caption: Optional[str]
    reason: Optional[str]
    raw: Dict[str, Any] = field(repr=False)


def _image_bytes(image: ImageInput) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    return Path(image).read_bytes()


def _header(job_id: Optional[str], params: Optional[Mapping[str, Any]], meta: Optional[Mapping[str, Any]],
            label: Optional[str], fmt: str) -> bytes:
    h: Dict[str, Any] = {}
    if job_id is not None:
        h["id"] = job_id
    if fmt != "auto":
        h["format"] = fmt
    if label is not None:
        h["label"] = label
    if params:
        h["params"] = dict(params)
    if meta:
        h["meta"] = dict(meta)
    return json.dumps(h, separators=(",", ":"), sort_keys=True).encode()


class Client:
    """A producer connected to one or more lgapd ingest endpoints (ZeroMQ round-robins jobs across
    them: a fleet). Not thread-safe: one Client per thread.

    >>> with Client("tcp://127.0.0.1:5555", mode="router") as c:
    ...     ack = c.submit("cat.png", params={"seed": 7})
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], mode: str = "router", *, curve: Optional[CurveKeys] = None,
                 timeout: float = 30.0, context: Optional[zmq.Context] = None) -> None:
        if mode not in ("router", "pull"):
            raise ValueError("mode is 'router' (acks) or 'pull' (no acks)")
        self.mode = mode
        self.timeout = timeout
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER if mode == "router" else zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 5000)
        # Queue nothing for a node that is not connected (a dead fleet node must not swallow jobs).
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        if curve is not None:
            curve.apply(self._socket)
        for e in [endpoints] if isinstance(endpoints, str) else endpoints:
            self._socket.connect(e)
        self._pending: Dict[str, Ack] = {}

    # Lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Submitting ----------------------------------------------------------------------------------
    def send(self, image: ImageInput, *, id: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
             meta: Optional[Mapping[str, Any]] = None, label: Optional[str] = None, format: str = "auto") -> str:
        """Sends one job without waiting; returns its id (generated when not given)."""
        job_id = id if id is not None else uuid.uuid4().hex
        if not VALID_ID.fullmatch(job_id):
            raise refusal(job_id, "invalid_id", "the id is not 1-128 characters of A-Z a-z 0-9 . _ : -")
        try:
            self._socket.send_multipart([_header(job_id, params, meta, label, format), _image_bytes(image)])
        except zmq.Again as e:
            raise Timeout(f"{job_id}: lgapd did not take the job within {self.timeout} s (busy or unreachable)") from e
        return job_id

    def submit(self, image: ImageInput, *, id: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
               meta: Optional[Mapping[str, Any]] = None, label: Optional[str] = None, format: str = "auto",
               check: bool = True) -> Optional[Ack]:
        """Sends one job. Router mode: waits for its Ack and, with ``check``, raises the reason's
        typed error when it is rejected. Pull mode: returns None once ZeroMQ took the message."""
        job_id = self.send(image, id=id, params=params, meta=meta, label=label, format=format)
        if self.mode == "pull":
            return None
        ack = self._ack_for(job_id, time.monotonic() + self.timeout)
        return ack.raise_for_status() if check else ack

    def submit_many(self, jobs: Iterable[Union[Job, ImageInput]], *, max_in_flight: int = 32,
                    check: bool = False) -> List[Ack]:
        """Sends every job, keeping at most ``max_in_flight`` unacknowledged (router mode), and returns
        their Acks in submission order. With ``check`` the first rejection raises."""
        if self.mode == "pull":
            for j in jobs:
                j = j if isinstance(j, Job) else Job(j)
                self.send(j.image, id=j.id, params=j.params, meta=j.meta, label=j.label, format=j.format)
            return []
        order: List[str] = []
        in_flight: List[str] = []
        acks: Dict[str, Ack] = {}
        for j in jobs:
            j = j if isinstance(j, Job) else Job(j)
            while len(in_flight) >= max_in_flight:
                oldest = in_flight.pop(0)
                acks[oldest] = self._ack_for(oldest, time.monotonic() + self.timeout)
            job_id = self.send(j.image, id=j.id, params=j.params, meta=j.meta, label=j.label, format=j.format)
            order.append(job_id)
            in_flight.append(job_id)
        for job_id in in_flight:
            acks[job_id] = self._ack_for(job_id, time.monotonic() + self.timeout)
        out = [acks[i] for i in order]
        if check:
            for a in out:
                a.raise_for_status()
        return out

    def _ack_for(self, job_id: str, deadline: float) -> Ack:
        """The ack for ``job_id``; acks for other ids that arrive first are kept for their callers."""
        while job_id not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._socket.poll(int(left * 1000)):
                raise Timeout(f"{job_id}: no acknowledgement within {self.timeout} s")
            frames = self._socket.recv_multipart()
            try:
                a = json.loads(frames[-1])
                ack = Ack(a.get("id", ""), a["status"], a.get("reason"), a.get("message"))
            except (ValueError, KeyError) as e:
                raise Rejected(job_id, f"not an acknowledgement: {frames[-1][:200]!r}") from e
            self._pending[ack.id] = ack
        return self._pending.pop(job_id)


class Results:
    """lgapd's published results (or ``lgapctl results-proxy``'s), as an iterator of ``Result``.

    PUB/SUB has a slow joiner: results published before the subscription reaches lgapd are not
    delivered (the store has them all: ``lgapctl history``). ``wait_until_subscribed`` proves the
    subscription live by sending probe jobs through a Client until one's result arrives.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], topics: Sequence[str] = ("result",), *,
                 curve: Optional[CurveKeys] = None, context: Optional[zmq.Context] = None) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        if curve is not None:
            curve.apply(self._socket)
        for t in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, t.encode())
        for e in [endpoints] if isinstance(endpoints, str) else endpoints:
            self._socket.connect(e)
        self._early: List[Result] = []

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> "Results":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def receive(self, timeout: Optional[float] = None) -> Optional[Result]:
        """The next result, or None after ``timeout`` seconds (None: wait forever)."""
        if self._early:
            return self._early.pop(0)
        if not self._socket.poll(None if timeout is None else int(timeout * 1000)):
            return None
        frames = self._socket.recv_multipart()
        raw = json.loads(frames[-1])
        return Result(raw.get("id", ""), raw.get("status", ""), raw.get("label"), raw.get("confidence"),
                      raw.get("caption"), raw.get("reason"), raw)

    def __iter__(self) -> Iterator[Result]:
        while True:
            r = self.receive()
            if r is not None:
                yield r

    def wait_until_subscribed(self, client: Client, probe_image: ImageInput, timeout: float = 60.0) -> List[str]:
        """Sends probe jobs (ids ``probe-<uuid>``) until the result of one arrives; returns their
        ids. Results of other jobs seen meanwhile are kept and returned by later receives."""
        deadline = time.monotonic() + timeout
        probes: List[str] = []
        while time.monotonic() < deadline:
            probes.append(f"probe-{uuid.uuid4().hex}")
            client.submit(probe_image, id=probes[-1], check=False)
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                r = self.receive(timeout=max(0.0, until - time.monotonic()))
                if r is None:
                    break
                if r.id in probes:
                    return probes
                self._early.append(r)
        raise Timeout(f"no probe result within {timeout} s ({len(probes)} probes)")


def wait_for(results: Results, ids: Iterable[str], timeout: float) -> Tuple[Dict[str, Result], List[str]]:
    """Collects the results of ``ids``; returns those that arrived and the ids still missing."""
    want = set(ids)
    got: Dict[str, Result] = {}
    deadline = time.monotonic() + timeout
    while want - got.keys() and time.monotonic() < deadline:
        r = results.receive(timeout=max(0.0, deadline - time.monotonic()))
        if r is not None and r.id in want:
            got[r.id] = r
    return got, sorted(want - got.keys())
