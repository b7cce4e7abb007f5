"""Latent-pack reference purification against diffusers, on the tiny SD pack of the test fixtures
(lgaptools/tinypacks.py, the layout of Tests/ModelsTests/SDPackLayoutTests.swift).

- LatentPurifier == diffusers' StableDiffusionImg2ImgPipeline (same seed; K = 1 and 3; guidance 1 and 5;
  the working size equal to the input's and not; output_type "pt" and "np"), over all elements.
- noise_schedule "compvis" == add_noise at t_first + num_train_timesteps // steps followed by the same
  DDIM loop, and differs from "diffusers" only there.
- LatentPurifier (both schedules) == Tests/Fixtures/diffusion/sd15-tiny/reference-semantics.safetensors
  (tools/goldens/make_reference_semantics_goldens.py: diffusers' pipeline, and CompVis' DDIM sampler
  written out independently), in one thread as the goldens were made: the thread count changes float
  rounding, which this small random model amplifies up to ~4e-3; and captioner_ref.BlipCaptioner's
  captions with a prompt (processor resize and float bilinear) == Tests/Fixtures/blip/reference-semantics.json.
- diffpurify.DiffPurifier == LatentPurifier for the same seeds (eta 0 and 0.5, both schedules), batch for
  batch: a batch's composition changes float rounding (~1e-5 per UNet call), which this small random model
  amplifies up to ~0.06 at guidance 5, so a batched run is compared with the reference's batched run.

Run: cd tools && /work/venv/bin/python -m unittest discover -s tests   (about 20 s on 2 cores)
"""
import copy
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lgaptools import captioner_ref, diffpurify, locations, purify_ref, tinypacks

ATOL = 1e-5
FIXTURES = locations.repo() / "Tests" / "Fixtures"
SEMANTICS = FIXTURES / "diffusion" / "sd15-tiny" / "reference-semantics.safetensors"
CAPTIONS = FIXTURES / "blip" / "reference-semantics.json"


def rgb_fixture():
    """Tests/Fixtures/images/rgb.png (37 × 23) as [1, 3, H, W] in [0, 1]."""
    im = Image.open(FIXTURES / "images" / "rgb.png").convert("RGB")
    return (torch.from_numpy(np.array(im)).permute(2, 0, 1).float().unsqueeze(0) / 255).contiguous()


def report(test, name, a, b, atol=ATOL):
    """Asserts |a − b| ≤ atol over all elements, printing the max error (and the worst values on failure)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    test.assertEqual(tuple(a.shape), tuple(b.shape), name)
    err = (a - b).abs()
    worst = int(err.flatten().argmax())
    print(f"{name}: max |Δ| = {float(err.max()):.3e}")
    test.assertLessEqual(float(err.max()), atol,
                         f"{name}: max |Δ| {float(err.max()):.3e} at {worst}: {float(a.flatten()[worst])} vs {float(b.flatten()[worst])}")


class LatentToolsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from diffusers import StableDiffusionImg2ImgPipeline
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory(prefix="lgap-sd-tiny-")
        cls.pack = tinypacks.assemble_tiny_sd_pack(Path(cls.tmp.name) / "pack")
        cls.manifest = json.loads((cls.pack / "pack.json").read_text())
        cls.ref = purify_ref.load_purifier(cls.pack)
        r = cls.ref
        cls.pipe = StableDiffusionImg2ImgPipeline(vae=r.vae, text_encoder=r.text_encoder, tokenizer=r.tokenizer, unet=r.unet,
                                                  scheduler=r.scheduler, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
        cls.pipe.set_progress_bar_config(disable=True)
        cls.small = rgb_fixture()
        cls.square = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def diffusers_img2img(self, image, caption, strength, steps, guidance, seed, k, output_type="pt"):
        """The pipeline at the working size, with lgap's resize to and from it around it."""
        h, w = image.shape[2:]
        x = self.ref.resize(image.contiguous(), self.ref.model_size)  # as LatentPurifier: memory format changes rounding
        if (h, w) != self.ref.model_size:
            x = 2 * x - 1  # bicubic may overshoot below 0, where the pipeline would not normalise: hand it [−1, 1]
            self.assertLess(float(x.min()), 0, "the pipeline takes an image with negatives as already in [−1, 1]")
        out = self.pipe(caption, image=x, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                        num_images_per_prompt=k, generator=torch.Generator().manual_seed(seed), output_type=output_type).images
        if output_type == "np":
            out = torch.from_numpy(out).permute(0, 3, 1, 2)
        return self.ref.resize(out, (h, w)).clamp(0, 1)

    def test_latent_purifier_is_diffusers_img2img(self):
        self.assertIsInstance(self.ref, purify_ref.LatentPurifier)
        cases = [("square", 1, 1.0, "pt"), ("square", 3, 5.0, "pt"), ("small", 1, 5.0, "np"), ("small", 3, 1.0, "pt")]
        for name, k, guidance, output_type in cases:
            image = getattr(self, name)
            mine = self.ref.purify(image, "a red car on a road", 0.5, 10, guidance, 7, ensemble=k)
            theirs = self.diffusers_img2img(image, "a red car on a road", 0.5, 10, guidance, 7, k, output_type)
            report(self, f"LatentPurifier vs img2img ({name} {tuple(image.shape[2:])}, K={k}, guidance {guidance}, {output_type})",
                   mine, theirs)

    def compvis_by_hand(self, image, caption, strength, steps, seed):
        """add_noise at t_first + stride, then the DDIM loop over img2img's timesteps (guidance 1, eta 0)."""
        r = self.ref
        sched = r.scheduler
        sched.set_timesteps(steps)
        timesteps = sched.timesteps[steps - int(steps * strength):]
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = 2 * r.resize(image, r.model_size) - 1
            post = r.vae.encode(x).latent_dist
            z = r.vae.config.scaling_factor * (post.mean + post.std * torch.randn(post.mean.shape, generator=g))
            t_noise = timesteps[:1] + sched.config.num_train_timesteps // steps
            latents = sched.add_noise(z, torch.randn(z.shape, generator=g), t_noise)
            cond = r.encode([caption])
            for t in timesteps:
                eps = r.unet(latents, t, encoder_hidden_states=cond).sample
                latents = sched.step(eps, t, latents).prev_sample
            out = (r.vae.decode(latents / r.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        return r.resize(out, image.shape[2:]).clamp(0, 1), int(timesteps[0]), int(t_noise)

    def test_compvis_noises_one_stride_above_the_first_step(self):
        compvis = copy.copy(self.ref)
        compvis.noise_schedule = "compvis"
        mine = compvis.purify(self.small, "a cat", 0.5, 10, 1.0, 11)
        by_hand, first, noised = self.compvis_by_hand(self.small, "a cat", 0.5, 10, 11)
        self.assertEqual(noised - first, 100)
        report(self, f"compvis LatentPurifier vs add_noise at {noised} + loop from {first}", mine, by_hand)
        diffusers_mode = self.ref.purify(self.small, "a cat", 0.5, 10, 1.0, 11)
        self.assertGreater(float((mine - diffusers_mode).abs().max()), 1e-3, "compvis must differ from diffusers")
        with self.assertRaises(ValueError):  # 901 + 100 is past the 1000 training timesteps
            compvis.purify(self.small, "a cat", 1.0, 10, 1.0, 11)

    def test_diffpurifier_is_latent_purifier(self):
        captions = ["a red car", "a small bird in a blue sky"]
        x = torch.cat([self.small, torch.rand(1, 3, 23, 37, generator=torch.Generator().manual_seed(2))])
        seeds = [3, 4]
        for schedule in ("diffusers", "compvis"):
            manifest = dict(self.manifest, noise_schedule=schedule)
            dp = diffpurify.DiffPurifier(self.pack, manifest, checkpointing=False)
            for eta, k, guidance in ((0.0, 2, 5.0), (0.5, 1, 1.0)):
                s = diffpurify.Settings(strength=0.5, steps=10, guidance=guidance, ensemble=k, eta=eta)
                with torch.no_grad():
                    mine = dp.purify(x, dp.encode(captions), dp.draw_noise(seeds, s, dp.noise_shape(x.shape[2:])), s)
                ref = torch.cat(dp.ref.purify_batch([x[:1], x[1:]], captions, 0.5, 10, guidance, seeds, ensemble=k, eta=eta))
                report(self, f"DiffPurifier vs LatentPurifier.purify_batch ({schedule}, eta {eta}, K={k}, guidance {guidance})",
                       mine, ref)
                with torch.no_grad():
                    one = dp.purify(x[1:], dp.encode(captions[1:]), dp.draw_noise(seeds[1:], s, dp.noise_shape(x.shape[2:])), s)
                report(self, f"DiffPurifier vs LatentPurifier.purify (one image, {schedule}, eta {eta}, K={k})", one,
                       dp.ref.purify(x[1:], captions[1], 0.5, 10, guidance, seeds[1], ensemble=k, eta=eta))

    @unittest.skipUnless(SEMANTICS.is_file(), "no reference-semantics goldens")
    def test_both_schedules_match_the_reference_semantics_goldens(self):
        from safetensors import safe_open
        from safetensors.torch import load_file
        gold = load_file(str(SEMANTICS))
        with safe_open(str(SEMANTICS), "pt") as f:
            meta = f.metadata()
        self.assertEqual(json.loads(meta["model_size"]), list(self.ref.model_size))
        ref = copy.copy(self.ref)
        ref.resize_mode = meta["resize"]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for name, c in json.loads(meta["cases"]).items():
                for schedule in ("diffusers", "compvis"):
                    ref.noise_schedule = schedule
                    out = ref.purify(gold[c["image"]], c["caption"], c["strength"], c["steps"], c["guidance"], c["seed"],
                                     ensemble=c["ensemble"])
                    report(self, f"LatentPurifier vs reference-semantics {name}.{schedule}", out, gold[f"{name}.{schedule}"])
        finally:
            torch.set_num_threads(threads)

    @unittest.skipUnless(CAPTIONS.is_file(), "no reference-semantics captions")
    def test_captions_with_a_prompt_match_the_reference_semantics_goldens(self):
        gold = json.loads(CAPTIONS.read_text())
        images = [torch.from_numpy(np.array(Image.open(FIXTURES / "blip" / "images" / n).convert("RGB"))).permute(2, 0, 1)
                  .float().unsqueeze(0) / 255 for n in gold["images"]]
        for mode, resize in (("processor", None), ("bilinear", "bilinear")):
            captioning = dict(num_beams=gold["num_beams"], min_length=gold["min_length"], max_length=gold["max_length"],
                              prompt=gold["prompt"], resize=resize)
            captioner = captioner_ref.BlipCaptioner(self.pack, dict(self.manifest, captioning=captioning))
            got = [captioner.captions(x)[0] for x in images]
            self.assertEqual(got, [r["caption"] for r in gold[mode]], mode)

    def test_diffpurifier_gradient_flows_through_the_vae(self):
        dp = diffpurify.DiffPurifier(self.pack, self.manifest)
        s = diffpurify.Settings(strength=0.3, steps=10, guidance=5.0, ensemble=1)
        x = self.small.clone().requires_grad_(True)
        out = dp.purify(x, dp.encode(["a car"]), dp.draw_noise([1], s, dp.noise_shape(x.shape[2:])), s)
        g, = torch.autograd.grad(F.mse_loss(out, torch.zeros_like(out)), x)
        self.assertTrue(torch.isfinite(g).all() and float(g.abs().max()) > 0)


if __name__ == "__main__":
    unittest.main()
