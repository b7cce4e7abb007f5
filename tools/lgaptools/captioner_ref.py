"""The pack's BLIP captioner as the defence runs it, with a differentiable teacher-forced loss for
caption attacks (tools/attack/pgd_eot.py) — the Python side of Sources/Models/Captioner/Captioner.swift
with pack.json "captioning":

  num_beams, min_length, max_length  transformers' generate() settings (lengths count [DEC] and the prompt)
  prompt   text the caption starts with ("a picture of "): BlipProcessor(text=prompt) gives generate()
           its input_ids; the decoded prompt (and the spaces after it) is stripped from the caption
  resize   absent: the BLIP processor's own preprocessing of the 8-bit image (Pillow resize);
           "bilinear" | "bicubic": pixel_values = (F.interpolate(x, processor size, mode,
           align_corners=False) − image_mean) / image_std on the float image x = 8-bit image / 255

`captions(x)` is exact. `pixel_values(x)` is its differentiable preprocessing: exact with "resize" set,
otherwise Pillow's resampling as a linear map (lgaptools/resample.py), which leaves out Pillow's 8-bit
rounding (`pixel_values_bound` says by how much that can differ).
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import resample

PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


class BlipCaptioner:
    """The pack's BLIP captioner: captions as the defence makes them, and a teacher-forced loss."""

    def __init__(self, pack, manifest, device="cpu"):
        from transformers import BlipForConditionalGeneration, BlipProcessor
        pack = Path(pack)
        self.settings = manifest.get("captioning", {})
        self.prompt = self.settings.get("prompt")
        self.resize = self.settings.get("resize")
        if self.resize not in (None, "bilinear", "bicubic"):
            raise ValueError(f"captioning.resize must be bilinear or bicubic, got {self.resize!r}")
        self.device = torch.device(device)
        self.processor = BlipProcessor.from_pretrained(pack / "captioner")
        self.model = BlipForConditionalGeneration.from_pretrained(pack / "captioner", torch_dtype=torch.float32)
        self.model.eval().to(self.device)
        for q in self.model.parameters():
            q.requires_grad_(False)
        ip = self.processor.image_processor
        self.size = (ip.size["height"], ip.size["width"])
        self.pil_filter = PIL_FILTERS.get(int(ip.resample), "bicubic")
        self.mean = torch.tensor(ip.image_mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std, device=self.device).view(1, 3, 1, 1)
        tok = self.processor.tokenizer
        self.prompt_ids = tok(self.prompt).input_ids[1:-1] if self.prompt else []  # without [CLS] / [SEP]
        self.prompt_text = tok.decode(self.prompt_ids, skip_special_tokens=True) if self.prompt else ""

    @staticmethod
    def to_pil(x):
        """[B, 3, H, W] in [0, 1] → 8-bit PIL images (what the defence receives)."""
        q = (x.detach().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(np.ascontiguousarray(a)) for a in q]

    @torch.no_grad()
    def processor_pixel_values(self, x):
        """pixel_values exactly as the defence computes them from the 8-bit quantised images."""
        if self.resize:
            q = (x * 255).round().clamp(0, 255) / 255
            return self._normalise(self._float_resize(q))
        return self.processor(images=self.to_pil(x), return_tensors="pt").pixel_values.to(self.device)

    @torch.no_grad()
    def captions(self, x):
        """Captions of the 8-bit quantised images [B, 3, H, W], with pack.json's captioning settings."""
        px = self.processor_pixel_values(x)
        kwargs = {k: self.settings[k] for k in ("num_beams", "min_length", "max_length") if k in self.settings}
        if self.prompt:  # BlipProcessor(text=prompt)'s input_ids; generate() puts [DEC] first and drops [SEP]
            enc = self.processor.tokenizer([self.prompt] * len(x), return_tensors="pt")
            kwargs.update(input_ids=enc.input_ids.to(self.device), attention_mask=enc.attention_mask.to(self.device))
        out = self.model.generate(pixel_values=px, synced_gpus=False, **kwargs)
        # synced_gpus=False skips torch.distributed, which Debian's torch 1.13 cannot import under Python 3.11
        return [self.strip_prompt(self.processor.decode(o, skip_special_tokens=True)) for o in out]

    def strip_prompt(self, text):
        """`text` without the decoded prompt at its start and the spaces after it (as Captioner.swift)."""
        if self.prompt_text and text.startswith(self.prompt_text):
            return text[len(self.prompt_text):].lstrip(" ")
        return text

    # Differentiable preprocessing ----------------------------------------------------------------
    def _float_resize(self, x):
        if tuple(x.shape[2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode=self.resize, align_corners=False)

    def _normalise(self, x):
        return (x - self.mean) / self.std

    def pixel_values(self, x):
        """Differentiable pixel_values; x in [0, 1] stands for the rescaled 8-bit image."""
        if self.resize:
            return self._normalise(self._float_resize(x))
        return self._normalise(resample.pil_resize(x, self.size, self.pil_filter))

    def pixel_values_bound(self, hw):
        """The largest |pixel_values − processor_pixel_values| on 8-bit images of size hw (float rounding aside)."""
        if self.resize or tuple(hw) == self.size:
            return 0.0
        return resample.rounding_bound(hw, self.size, self.pil_filter) / float(self.std.min())

    # Caption attacks -----------------------------------------------------------------------------
    def target_ids(self, texts, with_eos=False):
        """Token ids as the captioner was trained on them ([DEC], the prompt if any, the text) and the 0/1
        mask of the positions the loss scores (the text's words, plus [SEP] when with_eos; never the prompt)."""
        tok = self.processor.tokenizer
        full = [(self.prompt_text + " " + t) if self.prompt_text else t for t in texts]
        enc = tok(full, padding=True, return_tensors="pt")
        ids = enc.input_ids.clone()
        ids[:, 0] = self.model.config.text_config.bos_token_id
        scored = enc.attention_mask.clone()
        scored[:, :1 + len(self.prompt_ids)] = 0
        if not with_eos:
            scored[ids == tok.sep_token_id] = 0
        return ids.to(self.device), enc.attention_mask.to(self.device), scored.to(self.device)

    def teacher_forced_loss(self, x, ids, mask, scored):
        """Per-image mean cross-entropy (no label smoothing) of the target tokens given the image → [B]."""
        logits = self.model(pixel_values=self.pixel_values(x), input_ids=ids, attention_mask=mask).logits
        ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        w = scored[:, 1:].to(ce.dtype)
        return (ce * w).sum(1) / w.sum(1).clamp_min(1)
