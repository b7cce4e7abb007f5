#!/usr/bin/env python3
"""Builds an lgap model pack (docs/packs/sd15-blip/README.md's layout) from the folders a user already
has: a diffusers Stable Diffusion 1.5 snapshot, a BLIP captioning folder and a classifier checkpoint.

    build_pack.py --sd SD15 --blip BLIP --classifier CKPT_OR_FOLDER --template {sd15-blip,sd15-blip-imagenet}
                  --out PACK [--link] [--classes-file F] [--image-size H W] [--steps N]

Writes PACK/ with captioner/, text_encoder/, tokenizer/, unet/, vae/, scheduler/, classifier/ and
pack.json (docs/packs/TEMPLATE/pack.json with the overrides below and "files": the SHA-256 of every file
in the pack, which `lgapctl pack verify` checks). Part by part:

- Files lgap reads as they are (configs, tokenizer files, safetensors weights) are copied, or with
  --link symlinked by absolute path (the pack's folders are real folders; only files are links).
- Weights: model.safetensors / diffusion_pytorch_model.safetensors (or a shard index with its shards)
  is taken when present, else the fp16 variant (*.fp16.safetensors, placed under the plain name), else
  pytorch_model.bin / diffusion_pytorch_model.bin, converted to safetensors without the buffers lgap
  does not load (position_ids) and without tensors that merely share another's storage under a name
  lgap does not read. A VAE whose mid-block attention uses the deprecated names query/key/value/
  proj_attn (SD 1.5's VAE does) is placed as it is: lgap, like diffusers, reads those names.
- The classifier: a checkpoint file (RobustBench WideResNet, torchvision ResNet, or akamaster CIFAR
  ResNet: recognised by its key names, "state_dict"/"module." wrappers removed) is converted with
  tools/convert/classifier.py's functions (its round-trip check included); a folder that already holds
  config.json + model.safetensors is taken as it is. A torchvision checkpoint needs --classes-file.
- Checks, before anything is written: every required file present; unet in/out channels == vae
  latent_channels; unet cross_attention_dim == the text encoder's hidden_size; config shapes match the
  weights' (conv_in, token and patch embeddings); image_size divisible by the VAE's and UNet's
  downsampling; the CLIP vocabulary fits the text encoder; BLIP's preprocessor size == its vision
  image_size (a multiple of patch_size) and its vocab.txt fits text_config.vocab_size; scheduler_config
  readable with a schedule lgap runs; classifier class names == the template's classes (CIFAR). A
  failed check prints one line, "refused: FILE: reason", and exits 2 (nothing is left at PACK).

Templates: "classes" and "synonyms" in a template may be "from_classifier": the classifier's
class_names, each class its own only synonym (sd15-blip-imagenet does this for ImageNet's 1000 names).
--image-size and --steps override the template's image_size and purification.steps (tiny packs).

Run: cd tools && $LGAP_PYTHON -m packs.build_pack --sd ~/sd15 --blip ~/blip-base --classifier Standard.pt \\
         --template sd15-blip --out ~/packs/sd15-blip --link
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lgaptools import locations

ROOT = locations.repo()
sys.path.insert(0, str(ROOT / "tools"))
from convert import classifier as convert  # noqa: E402

TEMPLATES = ROOT / "docs" / "packs"
FROM_CLASSIFIER = "from_classifier"
# Weight file names by preference: (transformers or diffusers stem for safetensors, for .bin).
WEIGHT_STEMS = {"transformers": ("model", "pytorch_model"), "diffusers": ("diffusion_pytorch_model", "diffusion_pytorch_model")}
SD_PARTS = {  # pack folder: (library, required files, optional files)
    "text_encoder": ("transformers", ["config.json"], []),
    "tokenizer": (None, ["vocab.json", "merges.txt"], ["tokenizer_config.json", "special_tokens_map.json"]),
    "unet": ("diffusers", ["config.json"], []),
    "vae": ("diffusers", ["config.json"], []),
    "scheduler": (None, ["scheduler_config.json"], []),
}
BLIP_PART = ("transformers", ["config.json", "preprocessor_config.json", "vocab.txt"],
             ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json", "generation_config.json"])
UNET_DOWN = {"CrossAttnDownBlock2D", "DownBlock2D"}
UNET_UP = {"CrossAttnUpBlock2D", "UpBlock2D"}


class Refusal(Exception):
    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Refusal(path, "missing")
    except (OSError, ValueError) as e:
        raise Refusal(path, f"not readable JSON ({e})")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safetensors_shapes(path):
    """{name: shape} from a safetensors header (the tensors are not read)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as e:
        raise Refusal(path, f"not a safetensors file ({e})")
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


class Weights:
    """A part's weights in its source folder: the files to place, or a .bin to convert."""

    def __init__(self, folder, library):
        st, pt = WEIGHT_STEMS[library]
        self.name = f"{st}.safetensors"  # the name in the pack
        self.files, self.bin = [], None
        index = folder / f"{st}.safetensors.index.json"
        if (folder / self.name).is_file():
            self.files = [(folder / self.name, self.name)]
        elif index.is_file():
            shards = sorted(set(read_json(index).get("weight_map", {}).values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if not shards or missing:
                raise Refusal(index, f"shards missing: {missing or 'weight_map is empty'}")
            self.files = [(index, index.name)] + [(folder / s, s) for s in shards]
        elif (folder / f"{st}.fp16.safetensors").is_file():
            self.files = [(folder / f"{st}.fp16.safetensors", self.name)]
        elif (folder / f"{pt}.bin").is_file():
            self.bin = folder / f"{pt}.bin"
        elif (folder / f"{pt}.fp16.bin").is_file():
            self.bin = folder / f"{pt}.fp16.bin"
        elif (folder / f"{pt}.bin.index.json").is_file():
            raise Refusal(folder / f"{pt}.bin.index.json", "sharded .bin checkpoints are not converted here: "
                          "run tools/convert/bin_to_safetensors.py on a merged checkpoint")
        else:
            raise Refusal(folder / self.name, f"missing (no safetensors weights, shard index or {pt}.bin)")
        self._shapes = None

    @property
    def source(self):
        return self.bin or self.files[0][0]

    def shapes(self):
        """{name: shape} of every tensor (read from headers, or from the .bin)."""
        if self._shapes is None:
            if self.bin:
                self._shapes = {k: list(v.shape) for k, v in self.state().items()}
            else:
                self._shapes = {}
                for path, _ in self.files:
                    if path.suffix == ".safetensors":
                        self._shapes.update(safetensors_shapes(path))
        return self._shapes

    def state(self):
        """The tensors (a .bin, or the safetensors files) as a dict."""
        if self.bin:
            try:
                raw = torch.load(self.bin, map_location="cpu")
            except Exception as e:
                raise Refusal(self.bin, f"cannot read ({e})")
            if not isinstance(raw, dict):
                raise Refusal(self.bin, "not a state_dict")
            return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        state = {}
        for path, _ in self.files:
            if path.suffix == ".safetensors":
                state.update(load_file(str(path)))
        return state


def expect_shape(weights, key, shape, config_path, what):
    found = weights.shapes().get(key)
    if found is None:
        raise Refusal(weights.source, f"no tensor {key}")
    if list(found) != list(shape):
        raise Refusal(config_path, f"{what} says {key} is {list(shape)}, the weights have {list(found)}")


class Plan:
    """Everything found in the sources and checked, before anything is written."""

    def __init__(self, args):
        self.args = args
        self.sd, self.blip = Path(args.sd), Path(args.blip)
        self.template = read_json(TEMPLATES / args.template / "pack.json")
        self.notes = []
        self.parts = {}  # pack folder: (source folder, [files], Weights or None)
        for part, (library, required, optional) in SD_PARTS.items():
            self.parts[part] = self.find(self.sd / part, library, required, optional)
        self.parts["captioner"] = self.find(self.blip, *BLIP_PART)
        self.check_sd()
        self.check_blip()
        self.classifier = self.find_classifier(Path(args.classifier))
        self.manifest = self.make_manifest()

    def find(self, folder, library, required, optional):
        if not folder.is_dir():
            raise Refusal(folder, "missing folder")
        for name in required:
            if not (folder / name).is_file():
                raise Refusal(folder / name, "missing")
        files = required + [n for n in optional if (folder / n).is_file()]
        return folder, files, Weights(folder, library) if library else None

    # --- Stable Diffusion
    def check_sd(self):
        folder = lambda p: self.parts[p][0]  # noqa: E731
        te_path, unet_path, vae_path = (folder(p) / "config.json" for p in ("text_encoder", "unet", "vae"))
        te, unet, vae = read_json(te_path), read_json(unet_path), read_json(vae_path)
        te_w, unet_w, vae_w = (self.parts[p][2] for p in ("text_encoder", "unet", "vae"))
        latent = vae.get("latent_channels", 4)
        for key in ("in_channels", "out_channels"):
            if unet.get(key, 4) != latent:
                raise Refusal(unet_path, f"{key} {unet.get(key, 4)} but the VAE's latent_channels is {latent} ({vae_path})")
        hidden = te.get("hidden_size", 512)
        cross = unet.get("cross_attention_dim", 1280)
        if cross != hidden:
            raise Refusal(unet_path, f"cross_attention_dim {cross} but the text encoder's hidden_size is {hidden} ({te_path})")
        for t in unet.get("down_block_types", []):
            if t not in UNET_DOWN:
                raise Refusal(unet_path, f"down block type {t} (lgap runs {sorted(UNET_DOWN)})")
        for t in unet.get("up_block_types", []):
            if t not in UNET_UP:
                raise Refusal(unet_path, f"up block type {t} (lgap runs {sorted(UNET_UP)})")
        unet_ch, vae_ch = unet.get("block_out_channels", [320, 640, 1280, 1280]), vae.get("block_out_channels", [64])
        expect_shape(unet_w, "conv_in.weight", [unet_ch[0], unet.get("in_channels", 4), 3, 3], unet_path, "config.json")
        expect_shape(vae_w, "decoder.conv_in.weight", [vae_ch[-1], latent, 3, 3], vae_path, "config.json")
        vocab = te.get("vocab_size", 49408)
        expect_shape(te_w, "text_model.embeddings.token_embedding.weight", [vocab, hidden], te_path, "config.json")
        # The CLIP tokenizer's ids must index the text encoder's embedding, 77 tokens its positions.
        tok_dir = self.parts["tokenizer"][0]
        ids = read_json(tok_dir / "vocab.json")
        if not isinstance(ids, dict) or not ids:
            raise Refusal(tok_dir / "vocab.json", "not a token → id map")
        if max(ids.values()) >= vocab:
            raise Refusal(tok_dir / "vocab.json", f"ids up to {max(ids.values())} but the text encoder's vocab_size is {vocab}")
        if te.get("max_position_embeddings", 77) < 77:
            raise Refusal(te_path, f"max_position_embeddings {te['max_position_embeddings']} < 77 (CLIP's context)")
        # image_size must survive the VAE's and the UNet's downsampling.
        factor = 2 ** (len(vae_ch) - 1) * 2 ** (len(unet_ch) - 1)
        size = self.args.image_size or self.template.get("image_size")
        if size and any(s % factor for s in size):
            where = "--image-size" if self.args.image_size else TEMPLATES / self.args.template / "pack.json"
            raise Refusal(where, f"image_size {list(size)} is not a multiple of {factor} (VAE × UNet downsampling)")
        if "scaling_factor" not in vae:
            self.notes.append("vae/config.json has no scaling_factor: lgap uses diffusers' default 0.18215 (SD 1.5's value)")
        self.check_scheduler(self.parts["scheduler"][0] / "scheduler_config.json")

    def check_scheduler(self, path):
        s = read_json(path)
        checks = [("beta_schedule", "linear", {"linear", "scaled_linear", "squaredcos_cap_v2"}),
                  ("prediction_type", "epsilon", {"epsilon", "v_prediction", "sample"}),
                  ("timestep_spacing", "leading", {"leading", "trailing", "linspace"})]
        for key, default, allowed in checks:
            if s.get(key, default) not in allowed:
                raise Refusal(path, f"{key} {s.get(key)!r} (lgap runs {sorted(allowed)})")
        if not isinstance(s.get("num_train_timesteps", 1000), int) or s.get("num_train_timesteps", 1000) < 2:
            raise Refusal(path, "num_train_timesteps must be an integer > 1")
        if s.get("thresholding") or s.get("rescale_betas_zero_snr"):
            raise Refusal(path, "thresholding / rescale_betas_zero_snr are not supported")
        if s.get("trained_betas"):
            raise Refusal(path, "trained_betas are not supported")
        if "clip_sample" not in s:
            self.notes.append(f"{path.name} has no clip_sample: DDIM's default (true) applies; SD 1.5's sets false")
        self.notes.append(f"scheduler: {s.get('_class_name', 'unnamed')} config, run by lgap as DDIM "
                          f"({s.get('beta_schedule', 'linear')}, steps_offset {s.get('steps_offset', 0)})")

    # --- BLIP
    def check_blip(self):
        folder, _, weights = self.parts["captioner"]
        config_path = folder / "config.json"
        config = read_json(config_path)
        arch = config.get("architectures") or ["BlipForConditionalGeneration"]
        if "BlipForConditionalGeneration" not in arch:
            raise Refusal(config_path, f"architectures {arch}: lgap captions with BlipForConditionalGeneration")
        vision, text = config.get("vision_config", {}), config.get("text_config", {})
        image, patch = vision.get("image_size", 384), vision.get("patch_size", 16)
        if image % patch:
            raise Refusal(config_path, f"vision image_size {image} is not a multiple of patch_size {patch}")
        pre_path = folder / "preprocessor_config.json"
        pre = read_json(pre_path)
        size = pre.get("size", 384)
        hw = (size, size) if isinstance(size, int) else (size.get("height"), size.get("width"))
        if pre.get("do_resize", True) and hw != (image, image):
            raise Refusal(pre_path, f"size {size} but the vision model takes {image}×{image} ({config_path})")
        hidden, v_hidden = text.get("hidden_size", 768), vision.get("hidden_size", 768)
        vocab_size = text.get("vocab_size", 30524)
        expect_shape(weights, "vision_model.embeddings.patch_embedding.weight", [v_hidden, 3, patch, patch], config_path,
                     "vision_config")
        expect_shape(weights, "text_decoder.bert.embeddings.word_embeddings.weight", [vocab_size, hidden], config_path,
                     "text_config")
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        added = read_json(folder / "added_tokens.json") if (folder / "added_tokens.json").is_file() else {}
        if len(lines) + len([t for t in added if t not in lines]) > vocab_size:
            raise Refusal(folder / "vocab.txt", f"{len(lines)} tokens (+{len(added)} added) but text_config.vocab_size is {vocab_size}")

    # --- classifier
    def find_classifier(self, path):
        """("folder", path) for a converted folder, or ("convert", config, state) for a checkpoint."""
        if path.is_dir():
            for name in ("config.json", "model.safetensors"):
                if not (path / name).is_file():
                    raise Refusal(path / name, "missing (a classifier folder is tools/convert/classifier.py's output)")
            config = read_json(path / "config.json")
            kind = ("folder", path)
        elif path.is_file():
            try:
                state = convert.load_checkpoint(path)
            except SystemExit as e:
                message, unreadable = str(e), f"cannot read {path}: "
                if message.startswith(unreadable):
                    message = f"not a readable PyTorch checkpoint ({message[len(unreadable):]})"
                raise Refusal(path, message.removeprefix(f"{path}: "))
            found = convert.detect(state)
            if found is None:
                raise Refusal(path, "not a RobustBench WideResNet, torchvision ResNet or CIFAR ResNet state_dict "
                              f"(keys begin {sorted(state)[:3]})")
            names = None
            if found == "torchvision-resnet":
                if not self.args.classes_file:
                    raise Refusal(path, "a torchvision checkpoint needs --classes-file (one class name a line)")
                names = convert.read_classes(self.args.classes_file)
            try:
                config = convert.make_config(found, state, path.name, class_names=names)
            except SystemExit as e:
                raise Refusal(self.args.classes_file or path, str(e))
            kind = ("convert", config, state, found)
        else:
            raise Refusal(path, "missing")
        names = config.get("class_names", [])
        if len(names) != config.get("num_classes"):
            raise Refusal(path, f"{len(names)} class_names for num_classes {config.get('num_classes')}")
        classes = self.template["classes"]
        if classes != FROM_CLASSIFIER and names != classes:
            raise Refusal(path, f"class names {names[:4]}... differ from template {self.args.template}'s classes {classes[:4]}...")
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            self.notes.append(f"classifier: repeated class names {repeated[:6]} (a caption naming one counts for each)")
        self.class_names = names
        return kind

    def make_manifest(self):
        m = json.loads(json.dumps(self.template))
        if m["classes"] == FROM_CLASSIFIER:
            m["classes"] = self.class_names
        if m.get("synonyms") == FROM_CLASSIFIER:
            m["synonyms"] = {name: [name] for name in self.class_names}
        if self.args.image_size:
            m["image_size"] = list(self.args.image_size)
        if self.args.steps:
            m["purification"]["steps"] = self.args.steps
        p = m["purification"]
        if int(p["steps"] * p["strength"]) < 1:
            where = "--steps" if self.args.steps else TEMPLATES / self.args.template / "pack.json"
            raise Refusal(where, f"strength {p['strength']} × steps {p['steps']} runs no denoising step")
        return m


class Builder:
    def __init__(self, plan, out, link):
        self.plan, self.out, self.link = plan, out, link

    def place(self, src, rel):
        dst = self.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self.link:
            os.symlink(os.path.abspath(src), dst)
        else:
            shutil.copyfile(src, dst)
        print(f"  {rel:<48} {'→' if self.link else '←'} {src}")

    def weights(self, part, weights):
        if not weights.bin:
            for src, name in weights.files:
                self.place(src, f"{part}/{name}")
            return
        state = weights.state()
        dropped = [k for k in state if k.endswith("position_ids")]
        state = {k: v for k, v in state.items() if k not in dropped}
        # Tensors sharing storage (tied weights in a torch.save) are stored once by safetensors' rules:
        # keep the first name of each storage, as transformers' save_pretrained does.
        seen = {}
        for k, v in list(state.items()):
            key = (v.untyped_storage().data_ptr() if hasattr(v, "untyped_storage") else v.storage().data_ptr(),
                   v.storage_offset(), tuple(v.shape), v.dtype)
            if v.numel() and key in seen:
                dropped.append(f"{k} (= {seen[key]})")
                del state[k]
            else:
                seen[key] = k
        dst = self.out / part / weights.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(dst), metadata={"format": "pt"})
        what = [f"{len(state)} tensors"] + ([f"dropped {', '.join(dropped)}"] if dropped else [])
        print(f"  {part + '/' + weights.name:<48} ⇐ converted {weights.source} ({'; '.join(what)})")

    def classifier(self):
        kind = self.plan.classifier
        if kind[0] == "folder":
            for name in ("config.json", "model.safetensors", "LICENSE"):
                if (kind[1] / name).is_file():
                    self.place(kind[1] / name, f"classifier/{name}")
            return
        _, config, state, found = kind
        print(f"  classifier/                                      ⇐ converted {self.plan.args.classifier} ({found}, "
              f"depth {config['depth']}, {config['num_classes']} classes) with tools/convert/classifier.py:")
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said):
                convert.write(self.out / "classifier", config, state)
        except SystemExit as e:
            raise Refusal(self.plan.args.classifier, str(e))
        print("    " + said.getvalue().strip().replace(str(self.out), str(self.plan.args.out)) + ", round trip exact")

    def build(self):
        for part, (folder, files, weights) in self.plan.parts.items():
            for name in files:
                self.place(folder / name, f"{part}/{name}")
            if weights:
                self.weights(part, weights)
        self.classifier()
        manifest = dict(self.plan.manifest)
        manifest["files"] = {str(p.relative_to(self.out)): sha256(p) for p in sorted(self.out.rglob("*")) if p.is_file()}
        (self.out / "pack.json").write_text(format_manifest(manifest), encoding="utf-8")
        print(f"  pack.json ← docs/packs/{self.plan.args.template}/pack.json ({len(manifest['classes'])} classes, "
              f"image_size {manifest.get('image_size')}, steps {manifest['purification']['steps']}, "
              f"{len(manifest['files'])} files hashed)")


def format_manifest(m):
    """pack.json laid out as the templates are: a key a line; synonyms, licenses and files an entry a line."""
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    lines = []
    for key, value in m.items():
        if isinstance(value, dict) and value and key in ("synonyms", "licenses", "files"):
            inner = ",\n".join(f"    {dump(k)}: {dump(v)}" for k, v in value.items())
            lines.append(f"  {dump(key)}: {{\n{inner}\n  }}")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sd", required=True, help="diffusers Stable Diffusion 1.5 folder (text_encoder/, tokenizer/, unet/, vae/, scheduler/)")
    p.add_argument("--blip", required=True, help="BlipForConditionalGeneration folder (Salesforce/blip-image-captioning-base)")
    p.add_argument("--classifier", required=True, help="classifier checkpoint (.pt/.pth/.th) or converted classifier folder")
    p.add_argument("--template", required=True, choices=sorted(d.name for d in TEMPLATES.iterdir() if (d / "pack.json").is_file()))
    p.add_argument("--out", required=True, help="the pack folder to create (must not exist or be empty)")
    p.add_argument("--link", action="store_true", help="symlink the files lgap reads as they are instead of copying them")
    p.add_argument("--classes-file", help="class names, one a line, for a torchvision checkpoint")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="override the template's image_size")
    p.add_argument("--steps", type=int, help="override the template's purification steps")
    args = p.parse_args()
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise Refusal(out, "exists and is not empty")
        plan = Plan(args)
        for note in plan.notes:
            print(f"note: {note}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        print(f"building {out} from template {args.template}:")
        Builder(plan, partial, args.link).build()
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except Refusal as e:
        shutil.rmtree(partial, ignore_errors=True)
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(2)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"wrote {out}; check it with: lgapctl pack verify --pack {out}")


if __name__ == "__main__":
    main()
