"""Shared helpers for lgap's Python tools (data loading, captions, safetensors I/O).

Python is for tools only: goldens, training, conversion, attacks and reference runs.
The daemon and its tests never import any of this.

Importing the package installs torchfix (torch 1.13's baddbmm propagates NaN from the uninitialised
input diffusers' attention passes it), so every reference run through these tools is correct.
"""
from . import torchfix

torchfix.install()
