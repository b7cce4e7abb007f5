"""Shared helpers for lgap's Python tools (data loading, captions, safetensors I/O).

Python is for tools only: goldens, training, conversion, attacks and reference runs.
The daemon and its tests never import any of this.
"""
