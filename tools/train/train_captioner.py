#!/usr/bin/env python3
"""Trains the default pack's captioner: a small BlipForConditionalGeneration (transformers) on 32x32
../shared CIFAR-10 images with the captions of tools/lgaptools/captions.py.

- Architecture: BLIP's ViT (patch 4 → 64 patches + class token, 4 layers x 192) and BERT text decoder
  with cross-attention (4 layers x 256). The word-level vocabulary is every word the caption generator
  can emit plus BERT's five special tokens, with BLIP's added [DEC] (bos) and [ENC] tokens, written as a
  standard vocab.txt + tokenizer files (a smaller vocabulary than BERT's 30,522, allowed by the pack's
  issue; bos/pad/sep ids are set in config.json).
- Image processing is BlipImageProcessor's: 32x32 bicubic (identity at this size), rescale 1/255,
  normalise with OpenAI CLIP mean/std. Training augments with random crops (4-pixel reflect padding) and
  horizontal flips; captions describe colours, which neither changes.
- Loss: the BLIP LM loss on the caption (first token replaced by [DEC], as generate() starts) plus an
  auxiliary class loss on the vision encoder's pooled output (weight --aux). The auxiliary head only
  speeds up learning the vision features from scratch; it is not part of the exported model.
- Resumable: a checkpoint every --ckpt-minutes in --out; the same command resumes; another configuration
  is refused. Validation on 1,000 held-out training images (every 50th): LM loss and, with greedy
  generation, how often the caption names the true class.

Run:    tools/train/run.sh tools/train/train_captioner.py --steps 8000
Export: tools/train/run.sh tools/train/train_captioner.py --export models/cifar10-mini
Writes: <out>/checkpoint.pt, <out>/log.jsonl; with --export: <pack>/captioner/ (config.json,
model.safetensors (fp16), vocab.txt, tokenizer files, preprocessor_config.json, generation_config.json).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lgaptools import captions, cifar, trainloop  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
VISION = dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3,
              image_size=32, patch_size=4, hidden_act="gelu", layer_norm_eps=1e-5)
TEXT = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
            max_position_embeddings=32, hidden_act="gelu", label_smoothing=0.1)
GENERATION = dict(num_beams=3, min_length=5, max_length=20)


def vocab_words():
    return SPECIALS + captions.vocabulary() + [".", ","]


def make_tokenizer(folder):
    """Writes vocab.txt and loads a BLIP-style BertTokenizer ([DEC] bos and [ENC] added)."""
    from transformers import BertTokenizer
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab_words()) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=TEXT["max_position_embeddings"])
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tok


def blip_config(tok):
    from transformers import BlipConfig
    text = dict(TEXT, vocab_size=len(tok), bos_token_id=tok.convert_tokens_to_ids("[DEC]"),
                pad_token_id=tok.pad_token_id, sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id)
    return BlipConfig(vision_config=VISION, text_config=text, projection_dim=128)


def normalise(uint8_nhwc):
    x = torch.from_numpy(uint8_nhwc).permute(0, 3, 1, 2).float().div(255.0)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def augment(batch, rng):
    padded = np.pad(batch, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    out = np.empty_like(batch)
    for i in range(len(batch)):
        dy, dx = rng.integers(0, 9, 2)
        img = padded[i, dy:dy + 32, dx:dx + 32]
        out[i] = img[:, ::-1] if rng.random() < 0.5 else img
    return out


def encode_captions(tok, images, labels):
    caps = [captions.caption(int(l), im) for im, l in zip(images, labels)]
    enc = tok(caps, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    ids = enc.input_ids.clone()
    ids[:, 0] = tok.convert_tokens_to_ids("[DEC]")
    if (enc.attention_mask.sum(1) >= 24).any():
        raise SystemExit("a caption does not fit 24 tokens; raise max_length")
    return ids, enc.attention_mask


@torch.no_grad()
def validate(model, tok, images, labels, ids, mask):
    model.eval()
    x = normalise(images)
    labels_t = ids.masked_fill(mask == 0, -100)
    loss = float(model(pixel_values=x, input_ids=ids, attention_mask=mask, labels=labels_t).loss)
    named = 0
    for i in range(0, len(x), 250):
        out = model.generate(pixel_values=x[i:i + 250], max_length=20, min_length=5, num_beams=1, synced_gpus=False)
        for row, label in zip(out, labels[i:i + 250]):
            text = tok.decode(row, skip_special_tokens=True)
            named += int(label) in captions.mentioned_classes(text)
    model.train()
    return dict(val_loss=loss, val_names_class=named / len(x))


def export(model, tok, pack):
    from transformers import BlipImageProcessor, GenerationConfig
    out = Path(pack) / "captioner"
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    BlipImageProcessor(size={"height": 32, "width": 32}, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                       do_convert_rgb=True).save_pretrained(out)
    cfg = model.config.text_config
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.sep_token_id, pad_token_id=cfg.pad_token_id,
                     **GENERATION).save_pretrained(out)
    print(f"exported captioner to {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--aux", type=float, default=0.5, help="weight of the auxiliary class loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder (default ~/.cache/lgap/train/captioner)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--export", default=None, metavar="PACK")
    args = p.parse_args()

    from transformers import BlipForConditionalGeneration
    threads = trainloop.setup_threads()
    out = Path(args.out or cifar.cache_dir() / "train" / "captioner")
    tok = make_tokenizer(out / "tokenizer")
    config = dict(kind="captioner", vision=VISION, text=TEXT, vocab=vocab_words(), steps=args.steps, batch=args.batch,
                  lr=args.lr, warmup=args.warmup, wd=args.weight_decay, aux=args.aux, seed=args.seed)
    ckpt = trainloop.Checkpointer(out, config, every_s=args.ckpt_minutes * 60)
    trainloop.seed_everything(args.seed)
    model = BlipForConditionalGeneration(blip_config(tok))
    aux_head = torch.nn.Linear(VISION["hidden_size"], 10)
    print(f"captioner {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, vocab {len(tok)}, "
          f"torch threads {threads}", flush=True)
    params = list(model.parameters()) + list(aux_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    ema = trainloop.EMA(model, 0.999)
    step = 0
    state = ckpt.load()
    if state:
        model.load_state_dict(state["model"]); aux_head.load_state_dict(state["aux"])
        opt.load_state_dict(state["opt"]); ema.load_state_dict(state["ema"]); step = state["step"]
        print(f"resumed from {ckpt.path} at step {step}", flush=True)
    if args.export:
        if not state:
            raise SystemExit(f"no checkpoint in {out} to export")
        model.load_state_dict(ema.state_dict())
        export(model, tok, args.export)
        return

    images, labels, _ = cifar.load("train")
    va = np.arange(0, len(images), 50)
    tr = np.setdiff1d(np.arange(len(images)), va)
    ids, mask = encode_captions(tok, images, labels)
    rng = np.random.default_rng(args.seed * 1000003 + step)
    progress = trainloop.Progress(args.steps, args.batch, step, out / "log.jsonl")
    t_end = time.time() + args.minutes * 60 if args.minutes else None
    losses, accs = [], []
    model.train()
    while step < args.steps:
        idx = rng.choice(tr, size=args.batch, replace=False)
        x = normalise(augment(images[idx], rng))
        y = torch.from_numpy(labels[idx])
        b_ids, b_mask = ids[idx], mask[idx]
        progress_frac = step / args.steps
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + np.cos(np.pi * progress_frac))
        for group in opt.param_groups:
            group["lr"] = lr
        vision = model.vision_model(pixel_values=x)
        text = model.text_decoder(input_ids=b_ids, attention_mask=b_mask, encoder_hidden_states=vision[0],
                                  labels=b_ids.masked_fill(b_mask == 0, -100), reduction="mean")
        aux_logits = aux_head(vision[1])
        loss = text.loss + args.aux * F.cross_entropy(aux_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(model, step)
        step += 1
        losses.append(float(text.loss)); accs.append(float((aux_logits.argmax(1) == y).float().mean()))
        metrics = {}
        if step % args.val_every == 0 or step == args.steps:
            live = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(ema.state_dict())
            metrics = validate(model, tok, images[va], labels[va], ids[va], mask[va])
            model.load_state_dict(live)
        if step % 50 == 0 or step <= 3 or metrics:
            progress.report(step, lm_loss=float(np.mean(losses[-50:])), aux_acc=float(np.mean(accs[-50:])), lr=lr,
                            **metrics)
        stop = t_end is not None and time.time() > t_end
        if ckpt.due() or step == args.steps or stop:
            ckpt.save(model=model.state_dict(), aux=aux_head.state_dict(), opt=opt.state_dict(), ema=ema.state_dict(),
                      step=step)
        if stop:
            print(f"stopping after {args.minutes} min at step {step}", flush=True)
            break


if __name__ == "__main__":
    main()
