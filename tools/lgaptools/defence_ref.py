"""The whole LGAP defence as lgap runs a job (Sources/JobProcessing/JobProcessor.swift), in PyTorch with
the reference libraries, for tools that need the reference pipeline (bench/torch_pipeline.py,
attack/bpda_eot.py, eval/grid.py). Pixel-space and latent (vae/) packs alike:

  8-bit input → (pack.json "classifier_resize": "before_purification": the classifier's input,
  classifiers.resize_input) → BLIP caption (captioner_ref) → purification (purify_ref.load_purifier)
  with the pack's defaults → 8-bit → ("after_purification", the default: the classifier's resize)
  → classifier → the ensemble's soft vote (mean of the K softmax probabilities, as EnsembleVote).
"""
from pathlib import Path

import torch

from . import captioner_ref, classifiers, purify_ref

CLASSIFIER_RESIZE = ("after_purification", "before_purification")


def quantise(x):
    """[0, 1] → the 8-bit image / 255 (what lgap hands from stage to stage)."""
    return (x * 255).round().clamp(0, 255) / 255


class ReferenceDefence:
    def __init__(self, pack, manifest=None, classifier=None):
        self.pack = Path(pack)
        self.manifest = purify_ref.load_manifest(pack) if manifest is None else manifest
        mode = self.manifest.get("classifier_resize", "after_purification")
        if mode not in CLASSIFIER_RESIZE:
            raise ValueError(f"classifier_resize must be one of {CLASSIFIER_RESIZE}, got {mode!r}")
        self.resize_before = mode == "before_purification"
        self.defaults = self.manifest["purification"]
        self.purifier = purify_ref.load_purifier(pack, self.manifest)
        has_captioner = (self.pack / "captioner" / "config.json").is_file()
        self.captioner = captioner_ref.BlipCaptioner(pack, self.manifest) if has_captioner else None
        self.net, self.classifier_config = classifiers.load_frozen(Path(classifier) if classifier else self.pack / "classifier")

    # Stages --------------------------------------------------------------------------------------
    def prepare(self, x):
        """[N, 3, H, W] in [0, 1] → what is captioned and purified: the 8-bit image, or before
        purification the classifier's 8-bit input."""
        return classifiers.resize_input(x, self.classifier_config) if self.resize_before else quantise(x)

    def prepare_differentiable(self, x):
        """prepare without the 8-bit rounding, differentiable (attacks)."""
        return classifiers.resize_input_differentiable(x, self.classifier_config) if self.resize_before else x

    @torch.no_grad()
    def captions(self, x):
        return self.captioner.captions(x) if self.captioner else [""] * len(x)

    def settings(self, **overrides):
        """The pack's purification defaults with the non-None overrides."""
        d = self.defaults
        s = dict(strength=d["strength"], steps=d["steps"], guidance=d["guidance"], eta=d.get("eta", 0.0),
                 ensemble=d.get("ensemble", 1))
        s.update({k: v for k, v in overrides.items() if v is not None})
        return s

    @torch.no_grad()
    def purify(self, x, captions, seeds, **overrides):
        """x: [N, 3, H, W] (one size) → [N·K, 3, H, W] in [0, 1], one denoising loop as lgap batches it."""
        s = self.settings(**overrides)
        outs = self.purifier.purify_batch([xi.unsqueeze(0) for xi in x], captions, s["strength"], s["steps"], s["guidance"],
                                          seeds, ensemble=s["ensemble"], eta=s["eta"])
        return torch.cat(outs)

    def classifier_input(self, purified):
        """The purified images as the classifier takes them: 8-bit, then (after purification) its resize."""
        return quantise(purified) if self.resize_before else classifiers.resize_input(purified, self.classifier_config)

    def logits(self, purified):
        """Differentiable logits of purified images (the classifier's resize as a linear map, no rounding)."""
        if self.resize_before:
            return self.net(purified)
        return self.net(classifiers.resize_input_differentiable(purified, self.classifier_config))

    @torch.no_grad()
    def probabilities(self, purified, k):
        """EnsembleVote: the mean softmax over each image's K consecutive copies → [N, classes]."""
        probs = self.net(self.classifier_input(purified)).softmax(1)
        return probs.view(-1, k, probs.shape[1]).mean(1)

    @torch.no_grad()
    def run(self, x, seeds, **overrides):
        """The whole job for a batch of one size: (captions, purified [N·K, ...], probabilities [N, C])."""
        x = self.prepare(x)
        caps = self.captions(x)
        purified = self.purify(x, caps, seeds, **overrides)
        return caps, purified, self.probabilities(purified, self.settings(**overrides)["ensemble"])
