"""Resumable training plumbing shared by tools/train/*.py.

- `setup_threads()`: torch at its best on this 2-core CPU (2 OpenMP threads; the launcher script sets
  OPENBLAS_NUM_THREADS=1, unsets OPENBLAS_CORETYPE and preloads tcmalloc before Python starts).
- `Checkpointer`: writes model/optimizer/EMA/RNG state atomically every `every_s` seconds and refuses to
  resume a checkpoint whose configuration differs from the run's (the config is hashed into it).
- `Progress`: one line per report with step, loss, images/s and ETA.
- `device(name)`: the torch device a run trains on ("cpu" here; "cuda" on a lent GPU machine, with TF32
  and bf16 autocast: the tools run unchanged there, only faster).
- `Budget`: a learning-rate schedule's progress by step, or by wall-clock minutes for runs on a borrowed
  machine whose speed is known only once it runs (the cosine then ends when the time does).
- `write_slim(...)`: the EMA weights alone, in fp16, as a checkpoint `--export` accepts: what comes back
  from a GPU machine whose output size is limited.
"""
import hashlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from . import locations


def setup_threads(n=None):
    n = n or int(os.environ.get("LGAP_TORCH_THREADS", "2"))
    torch.set_num_threads(n)
    return n


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device(name="cpu"):
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return dev


def autocast(dev):
    """bf16 autocast on a GPU (its tensor cores); a no-op context on the CPU, where training stays fp32."""
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")


def load_file(path):
    """torch.load of our own checkpoints (they hold RNG states, which torch >= 2.6 refuses by default)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch 1.13 has no weights_only
        return torch.load(path, map_location="cpu")


class Budget:
    """Where a run is in its schedule, 0..1: by step (steps), or by wall-clock time when minutes is set."""

    def __init__(self, steps, minutes=None):
        self.steps, self.seconds = steps, (minutes * 60 if minutes else None)
        self.t0 = time.time()

    def fraction(self, step):
        if self.seconds is not None:
            return min(1.0, (time.time() - self.t0) / self.seconds)
        return min(1.0, step / self.steps)

    def done(self, step):
        return self.fraction(step) >= 1.0


def add_run_arguments(parser):
    """The options every training tool shares for where and how long it runs."""
    parser.add_argument("--schedule-minutes", type=float, default=None,
                        help="run the learning-rate cosine over this much wall-clock time instead of --steps, and "
                             "stop then (runs on a borrowed GPU machine, whose speed is known only once it runs)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (bf16 autocast)")
    parser.add_argument("--slim", default=None, metavar="FILE", help="after training, write the EMA weights "
                        "alone (fp16) to FILE, a checkpoint --export accepts")


def check_resumable(state, args, path):
    """Refuses to resume what cannot be: a slim checkpoint (weights only), or a run timed by the wall
    clock (its cosine restarts with the process, so a resumed run would replay it from the top)."""
    if state and state.get("slim"):
        raise SystemExit(f"{path} holds exported weights only (--slim); it cannot be resumed")
    if state and args.schedule_minutes:
        raise SystemExit(f"{path}: a --schedule-minutes run cannot be resumed; start it over in another --out")


def export_weights(state, out, *keys):
    """The EMA state dicts `keys` of a loaded checkpoint (full or slim) in fp32, for --export."""
    if not state:
        raise SystemExit(f"no checkpoint in {out} to export")
    return [{k: v.float() for k, v in state[key].items()} for key in keys]


def write_slim(path, checkpoint, keys):
    """Copies `keys` (EMA state dicts) of a checkpoint file into `path` in fp16, with the configuration hash
    and step that Checkpointer.load() checks, so `--export` runs on it unchanged. No RNG state: numpy's
    pickles do not load across numpy 1/2, and an export needs none."""
    state = load_file(checkpoint)
    slim = {k: state[k] for k in ("config_hash", "step", "saved_at")}
    for key in keys:
        slim[key] = {n: (v.half() if v.is_floating_point() else v) for n, v in state[key].items()}
    slim["slim"] = True
    torch.save(slim, path)


def repo_relative(path):
    """A path as it goes into a hashed configuration: relative to the repository when inside it, so the
    same run is recognised in another checkout (a GPU machine's copy of the tree)."""
    path = Path(path).expanduser().resolve()
    repo = locations.repo()
    try:
        return str(path.relative_to(repo))
    except ValueError:
        return str(path)


def config_hash(config):
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class Checkpointer:
    def __init__(self, directory, config, every_s=300):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "checkpoint.pt"
        self.config = config
        self.hash = config_hash(config)
        self.every_s = every_s
        self.last = time.time()
        (self.dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    def load(self):
        """Returns the saved state dict, or None for a fresh run. Refuses a checkpoint from another config."""
        if not self.path.is_file():
            return None
        state = load_file(self.path)
        if state.get("config_hash") != self.hash:
            raise SystemExit(f"{self.path} was written by a different configuration "
                             f"({state.get('config_hash')} != {self.hash}); "
                             f"use another --out or delete the checkpoint to start over")
        if "torch_rng" in state:  # a slim checkpoint (export only) carries no RNG state
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
        return state

    def due(self):
        return time.time() - self.last >= self.every_s

    def save(self, **state):
        state.update(config_hash=self.hash, torch_rng=torch.get_rng_state(), numpy_rng=np.random.get_state(),
                     python_rng=random.getstate(), saved_at=time.time())
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        self.last = time.time()


class Progress:
    def __init__(self, total_steps, batch_size, start_step=0, log_path=None):
        self.total = total_steps
        self.batch = batch_size
        self.start_step = start_step
        self.t0 = time.time()
        self.log = open(log_path, "a") if log_path else None

    def report(self, step, **metrics):
        elapsed = time.time() - self.t0
        done = step - self.start_step
        rate = done * self.batch / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) * elapsed / done if done > 0 else float("nan")
        parts = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        line = f"step {step}/{self.total} {parts} img/s {rate:.1f} eta {eta / 60:.1f} min"
        print(line, flush=True)
        if self.log:
            self.log.write(json.dumps(dict(step=step, time=time.time(), img_per_s=rate, **metrics)) + "\n")
            self.log.flush()


class EMA:
    """Exponential moving average of a module's parameters (the exported weights)."""

    def __init__(self, module, decay):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module, step=None):
        # Early in a run the decay ramps up with the step so the average is not stuck at the random
        # initialisation; step None (a run that starts from trained weights) uses the full decay.
        d = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self):
        return self.shadow

    def load_state_dict(self, state):
        # Onto each shadow tensor's device and dtype: checkpoints load on the CPU, training may run on a GPU.
        self.shadow = {k: v.to(self.shadow[k], copy=True) if k in self.shadow else v.clone() for k, v in state.items()}
