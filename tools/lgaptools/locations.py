"""Where lgap's tools find things, from environment variables with portable defaults (the Python side
of Sources/Locations/Locations.swift; README "Locations"):

  LGAP_DATA    a folder laid out like ../shared (data/cifar10, data/tokenizers, models/resnet-cifar);
               default $XDG_DATA_HOME/lgap when it holds data/, else ../shared beside the repository
  LGAP_EVAL    where evaluations, attacks and purified datasets are written; default $XDG_DATA_HOME/lgap/eval
  LGAP_PACK    the model pack; default <repo>/models/cifar10-mini
  LGAP_PYTHON  the interpreter tools re-launch themselves with; default python3 on PATH
  LGAP_CACHE   decoded-archive caches; default $XDG_CACHE_HOME/lgap
"""
import os
from pathlib import Path


def repo():
    """The repository this package was installed from (tools are installed editable: pip install -e tools)."""
    return Path(__file__).resolve().parents[2]


def _xdg(var, fallback):
    v = os.environ.get(var)
    return Path(v) if v else Path.home() / fallback


def data_root():
    if os.environ.get("LGAP_DATA"):
        return Path(os.environ["LGAP_DATA"])
    xdg = _xdg("XDG_DATA_HOME", ".local/share") / "lgap"
    if (xdg / "data").is_dir():
        return xdg
    return repo().parent / "shared"


def eval_dir():
    if os.environ.get("LGAP_EVAL"):
        return Path(os.environ["LGAP_EVAL"])
    return _xdg("XDG_DATA_HOME", ".local/share") / "lgap" / "eval"


def cache_dir():
    if os.environ.get("LGAP_CACHE"):
        return Path(os.environ["LGAP_CACHE"])
    return _xdg("XDG_CACHE_HOME", ".cache") / "lgap"


def default_pack():
    return Path(os.environ["LGAP_PACK"]) if os.environ.get("LGAP_PACK") else repo() / "models" / "cifar10-mini"


def python():
    return os.environ.get("LGAP_PYTHON", "python3")
