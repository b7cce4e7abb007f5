"""The paper's pack from real file formats, end to end, against the reference libraries.

tools/packs/make_fixtures.py writes tiny random checkpoints in exactly the layouts a user downloads
(a diffusers SD 1.5 snapshot, a transformers BLIP folder, RobustBench's Standard.pt, torchvision's
resnet50.pth), from fixed seeds, in both the current and the legacy formats (.bin weights, no
scaling_factor, position_ids buffers). tools/packs/build_pack.py turns them into packs with both
templates; then `lgapctl purify` and lgapd run one image each, and the results are compared with
transformers' BLIP generate and diffusers' StableDiffusionImg2ImgPipeline run on the *source* folders
with the template's semantics (prompt "a picture of ", torch bilinear resizing, the ImageNet template's
resize 256 + crop 224 before purification): captions token for token, purified images within 1/255,
the same label.

Needs the tools' environment (tools/setup-venv.sh) and the release build (lgapctl, lgapd: $LGAPCTL,
$LGAPD to override). Run: cd tools && $LGAP_PYTHON -m unittest tests.test_real_formats
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lgaptools import classifiers, locations

ROOT = locations.repo()
LGAPCTL = os.environ.get("LGAPCTL", str(ROOT / ".build" / "release" / "lgapctl"))
LGAPD = os.environ.get("LGAPD", str(ROOT / ".build" / "release" / "lgapd"))
SIZE, STEPS, SEED = 64, 10, 7  # the tiny VAE's working size (latent 8), the DDIM steps, the job's seed


def run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def python_tool(module, *args, cwd):
    return run(sys.executable, "-m", module, *args, cwd=cwd, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def to_tensor(image):
    """8-bit PIL image → [1, 3, H, W] float in [0, 1] (torchvision's ToTensor)."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def bilinear(x, size):
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def to_8bit(x):
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


class Reference:
    """The template's pipeline with transformers and diffusers on the source folders."""

    prompt = "a picture of "

    def __init__(self, src, strength, steps):
        self.strength, self.steps = strength, steps
        from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline
        from transformers import BlipForConditionalGeneration, BlipProcessor
        self.processor = BlipProcessor.from_pretrained(src / "blip")
        self.blip = BlipForConditionalGeneration.from_pretrained(src / "blip", torch_dtype=torch.float32).eval()
        self.pipe = StableDiffusionImg2ImgPipeline.from_pretrained(src / "sd15", torch_dtype=torch.float32, safety_checker=None,
                                                                   requires_safety_checker=False)
        self.pipe.scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def caption(self, x):
        """BLIP with the prompt, its input the float image resized bilinearly and CLIP-normalised."""
        ip = self.processor.image_processor
        mean, std = torch.tensor(ip.image_mean).view(1, 3, 1, 1), torch.tensor(ip.image_std).view(1, 3, 1, 1)
        pixels = (bilinear(x, (ip.size["height"], ip.size["width"])) - mean) / std
        text = self.processor(text=self.prompt, return_tensors="pt")
        ids = self.blip.generate(pixel_values=pixels, input_ids=text.input_ids, attention_mask=text.attention_mask, num_beams=3,
                                 min_length=5, max_length=20, synced_gpus=False)[0]
        decoded = self.processor.decode(ids, skip_special_tokens=True)
        head = self.prompt.strip()
        return [int(t) for t in ids], decoded[len(head):].lstrip(" ") if decoded.startswith(head) else decoded

    @torch.no_grad()
    def purify(self, x, caption):
        """diffusers img2img at the template's strength and guidance, bilinear to SIZE and back."""
        out = self.pipe(prompt=caption, image=bilinear(x, (SIZE, SIZE)), strength=self.strength,
                        num_inference_steps=self.steps, guidance_scale=5.0,
                        generator=torch.Generator().manual_seed(SEED), output_type="pt").images
        return bilinear(out, x.shape[2:]).clamp(0, 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(Path(LGAPCTL).exists() and Path(LGAPD).exists(), f"no release build at {LGAPCTL} (swift build -c release)")
class RealFormatTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="lgap-real-formats-"))
        tools = ROOT / "tools"
        cls.packs = {}
        for layout in ("current", "legacy"):
            src = cls.tmp / f"src-{layout}"
            python_tool("packs.make_fixtures", "--out", src, *(["--legacy"] if layout == "legacy" else []), cwd=tools)
            cifar = cls.tmp / f"cifar-{layout}"
            python_tool("packs.build_pack", "--sd", src / "sd15", "--blip", src / "blip", "--classifier", src / "Standard.pt",
                        "--template", "sd15-blip", "--out", cifar, "--image-size", SIZE, SIZE, "--steps", STEPS, cwd=tools)
            cls.packs[("cifar", layout)] = (src, cifar)
        src = cls.tmp / "src-current"
        imagenet = cls.tmp / "imagenet-current"
        python_tool("packs.build_pack", "--sd", src / "sd15", "--blip", src / "blip", "--classifier", src / "resnet50.pth",
                    "--classes-file", src / "imagenet_classes.txt", "--template", "sd15-blip-imagenet", "--out", imagenet,
                    "--image-size", SIZE, SIZE, cwd=tools)
        cls.packs[("imagenet", "current")] = (src, imagenet)
        # A CIFAR-sized input (32 px: resized up to the model size and back) and a non-square one for ImageNet.
        rng = np.random.default_rng(3)
        cls.cifar_png = cls.tmp / "cifar.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(cls.cifar_png)
        cls.photo_png = cls.tmp / "photo.png"
        Image.fromarray(rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)).save(cls.photo_png)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def lgapctl(self, pack, image, out):
        line = run(LGAPCTL, "purify", "--pack", pack, "--seed", SEED, "--save-purified", out, image, "--json").strip().splitlines()[-1]
        job = json.loads(line)
        self.assertEqual(job["status"], "done", job)
        return job, np.asarray(Image.open(Path(out) / (Path(image).stem + ".purified.png")).convert("RGB"))

    def check_against_reference(self, kind, layout, image_path):
        src, pack = self.packs[(kind, layout)]
        self.assertIn("loads", run(LGAPCTL, "pack", "verify", "--pack", pack))
        job, purified = self.lgapctl(pack, image_path, self.tmp / f"out-{kind}-{layout}")
        manifest = json.loads((pack / "pack.json").read_text())
        ref = Reference(src, manifest["purification"]["strength"], manifest["purification"]["steps"])
        net, config = classifiers.load_frozen(pack / "classifier")
        x = to_tensor(Image.open(image_path).convert("RGB"))
        if manifest.get("classifier_resize") == "before_purification":  # ImageNet: resize 256 + centre crop 224 first
            x = classifiers.resize_input(x, config)
        ids, caption = ref.caption(x)
        self.assertEqual(job["caption_tokens"], ids, f"{kind}/{layout}: caption tokens")
        self.assertEqual(job["caption"], caption, f"{kind}/{layout}: caption")
        expected = to_8bit(ref.purify(x, caption))
        self.assertEqual(purified.shape, expected.shape, f"{kind}/{layout}: purified size")
        diff = np.abs(purified.astype(int) - expected.astype(int))
        print(f"\n{kind}/{layout}: purified max |Δ| {diff.max()}/255 over {diff.size} values, caption {caption!r}", file=sys.stderr)
        self.assertLessEqual(diff.max(), 1, f"{kind}/{layout}: purified image beyond 1/255")
        with torch.no_grad():  # the classifier on the 8-bit purified image, as lgap classifies it (no second resize)
            label = int(net(to_tensor(expected)).argmax())
        self.assertEqual(job["label_index"], label, f"{kind}/{layout}: label")
        return job

    def test_cifar_template_current_and_legacy_formats(self):
        for layout in ("current", "legacy"):
            self.check_against_reference("cifar", layout, self.cifar_png)

    def test_imagenet_template_crops_before_purification(self):
        job = self.check_against_reference("imagenet", "current", self.photo_png)
        self.assertEqual(job["params"]["strength"], 0.1)
        self.assertEqual(len(job["top_k"]), 5)

    def test_daemon_runs_the_built_pack_like_lgapctl(self):
        sys.path.insert(0, str(ROOT / "clients" / "python"))
        import lgap_client as lgap
        _, pack = self.packs[("cifar", "current")]
        job, _ = self.lgapctl(pack, self.cifar_png, self.tmp / "out-daemon-ref")
        work = self.tmp / "daemon"
        work.mkdir()
        ingest, results = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        (work / "lgapd.toml").write_text('[daemon]\nthreads = 1\nnode = "real-formats"\n[pipeline]\nmax_wait_ms = 2\n')
        log = open(work / "stderr.log", "w")
        db = work / "db.sqlite"
        proc = subprocess.Popen([LGAPD, "--config", work / "lgapd.toml", "--db", db, "--pack", pack, "--ingest", ingest,
                                 "--results", results, "--ingest-mode", "router"], stderr=log, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while "] ready" not in (work / "stderr.log").read_text():
                self.assertIsNone(proc.poll(), (work / "stderr.log").read_text())
                self.assertLess(time.monotonic(), deadline, "lgapd did not start")
                time.sleep(0.05)
            with lgap.Client(ingest, mode="router") as c, lgap.Results(results) as sub:
                sub.wait_until_subscribed(c, self.cifar_png)
                self.assertEqual(c.submit(self.cifar_png, id="real-1", params={"seed": SEED}).status, "accepted")
                got, missing = lgap.wait_for(sub, ["real-1"], timeout=120)
            self.assertEqual(missing, [])
            self.assertEqual((got["real-1"].status, got["real-1"].label), ("done", job["label"]))
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=60), 0)
            log.close()
        shown = json.loads(run(LGAPCTL, "show", "real-1", "--db", db, "--json"))
        flat = json.dumps(shown)
        self.assertIn(job["purified_sha256"], flat, "lgapd's purified image is lgapctl's")
        self.assertIn(json.dumps(job["caption"]), flat)


if __name__ == "__main__":
    unittest.main()
