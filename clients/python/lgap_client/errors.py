"""Typed errors, one per reason code lgapd gives (README, "Reasons"). Each refusal says why; only
``StoreUnavailable`` is worth retrying as is."""
from __future__ import annotations

from typing import Dict, Optional, Type


class LgapError(Exception):
    """Base of every error this client raises."""


class Timeout(LgapError):
    """No acknowledgement arrived in time (the job may or may not have been accepted: resend it;
    a job that was accepted answers ``duplicate``)."""


class Rejected(LgapError):
    """lgapd refused the job. ``reason`` is its reason code, ``message`` its explanation."""

    reason = "rejected"
    retryable = False

    def __init__(self, job_id: str, message: Optional[str] = None, reason: Optional[str] = None) -> None:
        self.job_id = job_id
        self.message = message or ""
        if reason is not None:
            self.reason = reason
        super().__init__(f"{job_id}: {self.reason}: {self.message}")


def _refusal(name: str, code: str, doc: str, retryable: bool = False) -> Type[Rejected]:
    cls = type(name, (Rejected,), {"reason": code, "retryable": retryable, "__doc__": doc})
    return cls


BadHeader = _refusal("BadHeader", "bad_header", "The header is not a JSON object, repeats a key or has an unknown field.")
InvalidID = _refusal("InvalidID", "invalid_id", "The id is not 1-128 characters of A-Z a-z 0-9 . _ : -.")
BadParams = _refusal("BadParams", "bad_params", "A purification parameter is unknown, mistyped or out of range for the pack.")
MissingFrame = _refusal("MissingFrame", "missing_frame", "Fewer than two frames.")
ExtraFrames = _refusal("ExtraFrames", "extra_frames", "More than two frames.")
HeaderTooLarge = _refusal("HeaderTooLarge", "header_too_large", "The header exceeds max_header_bytes.")
FrameTooLarge = _refusal("FrameTooLarge", "frame_too_large", "The image exceeds max_message_bytes.")
EmptyImage = _refusal("EmptyImage", "empty_image", "The image frame is empty.")
UnknownFormat = _refusal("UnknownFormat", "unknown_format", "Not PNG, JPEG or binary PPM.")
FormatMismatch = _refusal("FormatMismatch", "format_mismatch", "The declared format disagrees with the bytes.")
ImageTooLarge = _refusal("ImageTooLarge", "image_too_large", "Wider, taller or with more pixels than the limits.")
UnsupportedImage = _refusal("UnsupportedImage", "unsupported_image", "A variant lgapd does not decode (CMYK JPEG, 16-bit PPM, ...).")
TooExpensive = _refusal("TooExpensive", "too_expensive", "The job's cost or memory exceeds the daemon's limits.")
StoreUnavailable = _refusal(
    "StoreUnavailable", "store_unavailable", "The store cannot commit now (disk full, database down): retry later.", retryable=True
)

REFUSALS: Dict[str, Type[Rejected]] = {
    c.reason: c
    for c in (
        BadHeader, InvalidID, BadParams, MissingFrame, ExtraFrames, HeaderTooLarge, FrameTooLarge, EmptyImage,
        UnknownFormat, FormatMismatch, ImageTooLarge, UnsupportedImage, TooExpensive, StoreUnavailable,
    )
}


def refusal(job_id: str, reason: Optional[str], message: Optional[str]) -> Rejected:
    """The typed error for a rejected acknowledgement (``Rejected`` itself for a code this client
    does not know, so a newer lgapd never breaks it)."""
    cls = REFUSALS.get(reason or "", Rejected)
    return cls(job_id, message, reason)
