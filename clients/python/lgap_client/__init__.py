"""Python client for lgapd: submit images over ZeroMQ, get typed acknowledgements, read results."""
from .client import Ack, Client, CurveKeys, Job, Result, Results, wait_for
from .errors import REFUSALS, LgapError, Rejected, StoreUnavailable, Timeout, TooExpensive, refusal

__all__ = [
    "Ack", "Client", "CurveKeys", "Job", "Result", "Results", "wait_for",
    "REFUSALS", "LgapError", "Rejected", "StoreUnavailable", "Timeout", "TooExpensive", "refusal",
]
__version__ = "0.4.0"
