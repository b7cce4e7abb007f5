"""Resumable training plumbing shared by tools/train/*.py.

- `setup_threads()`: torch at its best on this 2-core CPU (2 OpenMP threads; the launcher script sets
  OPENBLAS_NUM_THREADS=1, unsets OPENBLAS_CORETYPE and preloads tcmalloc before Python starts).
- `Checkpointer`: writes model/optimizer/EMA/RNG state atomically every `every_s` seconds and refuses to
  resume a checkpoint whose configuration differs from the run's (the config is hashed into it).
- `Progress`: one line per report with step, loss, images/s and ETA.
"""
import hashlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch


def setup_threads(n=None):
    n = n or int(os.environ.get("LGAP_TORCH_THREADS", "2"))
    torch.set_num_threads(n)
    return n


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        state = torch.load(self.path, map_location="cpu")
        if state.get("config_hash") != self.hash:
            raise SystemExit(f"{self.path} was written by a different configuration "
                             f"({state.get('config_hash')} != {self.hash}); "
                             f"use another --out or delete the checkpoint to start over")
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
        self.shadow = {k: v.clone() for k, v in state.items()}
