#!/usr/bin/env python3
"""Trains the default pack's caption-guided denoiser: a CLIP text encoder + a pixel-space 32x32
UNet2DConditionModel (diffusers), jointly, on ../shared CIFAR-10 with the captions of
tools/lgaptools/captions.py.

- Objective: epsilon prediction (DDPM, linear betas 1e-4..0.02, 1000 steps). Timesteps are weighted
  toward the purification range: with probability --low-frac t ~ U[0, --low-max), else t ~ U[0, 1000).
- Classifier-free guidance: the caption is replaced by "" with probability --drop (the unconditional
  branch the purifier uses).
- Augmentation: horizontal flips only (colour words in captions must stay true).
- Exported weights are an EMA of the trained ones.
- Optional classifier consistency (--classifier, --cls-weight): for t < --cls-max-t the one-step estimate
  x0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t) goes through the pack's frozen classifier, and the
  KL from the classifier's distribution on the clean image to its distribution on x0_hat is added to the
  epsilon loss (Salman et al. 2020, "Denoised Smoothing", trained a denoiser in front of a fixed
  classifier the same way). Purification keeps the class of the image only as far as the denoiser's
  reconstruction does; this spends the UNet's limited capacity on what the classifier looks at rather
  than on pixel detail it ignores. Validation then also reports the classifier's accuracy on x0_hat.
- Resumable: a checkpoint is written every --ckpt-minutes to --out; rerunning the same command resumes, and
  a checkpoint from a different configuration is refused.
- Validation on 1,000 held-out training images (every 50th): epsilon MSE and one-step x0 PSNR at
  t = 50, 100, 200, 300, with fixed noise.

Run (through the launcher that sets up threads and tcmalloc):
    tools/train/run.sh tools/train/train_diffusion.py --arch medium --steps 6000
Export the EMA weights into the pack:
    tools/train/run.sh tools/train/train_diffusion.py --arch medium --export models/cifar10-mini
Classifier-consistency fine-tune of the shipped denoiser (a second stage from its slim checkpoint):
    tools/train/run.sh tools/train/train_diffusion.py --arch medium-lowattn --init-from \
        ~/.cache/lgap/train/diffusion-gpu/checkpoint.pt --classifier models/cifar10-mini/classifier ...
    (the exact flags: tools/train/finetune_cls.sh)
On a lent GPU machine (--device cuda, bf16 autocast, a cosine timed by --schedule-minutes): the run that
made the shipped denoiser is in tools/train/on_gpu.sh.
Writes: <out>/checkpoint.pt, <out>/log.jsonl; with --export: <pack>/{text_encoder,tokenizer,unet,scheduler}.
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lgaptools import captions, cifar, cliptok, trainloop  # noqa: E402

ARCHS = {
    # name: (block_out_channels, layers_per_block, cross-attention at 16x16 too (else only at 8x8))
    "small": ((32, 64, 128), 1, True),
    "small2": ((32, 64, 128), 2, True),
    "medium": ((64, 128, 128), 1, True),
    "medium-lowattn": ((64, 128, 128), 1, False),
    "medium2-lowattn": ((64, 128, 128), 2, False),
    "wide-lowattn": ((64, 128, 256), 1, False),
    "wide2-lowattn": ((64, 128, 256), 2, False),
}
TEXT = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
            max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=128)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
                 timestep_spacing="leading")


def unet_config(arch):
    channels, layers, attn16 = ARCHS[arch]
    mid = "CrossAttnDownBlock2D" if attn16 else "DownBlock2D"
    mid_up = "CrossAttnUpBlock2D" if attn16 else "UpBlock2D"
    return dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=layers,
                block_out_channels=list(channels),
                down_block_types=["DownBlock2D", mid, "CrossAttnDownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D", mid_up, "UpBlock2D"],
                mid_block_type="UNetMidBlock2DCrossAttn", cross_attention_dim=TEXT["hidden_size"],
                attention_head_dim=4, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0)


def build(config):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    unet = UNet2DConditionModel(**config["unet"])
    text = CLIPTextModel(CLIPTextConfig(**config["text"]))
    return unet, text


def split_indices(n):
    val = np.arange(0, n, 50)
    train = np.setdiff1d(np.arange(n), val)
    return train, val


def caption_ids(images, labels, tokenizer):
    """CLIP token ids [N, 77] of every image's caption (cached: captions are deterministic)."""
    key = trainloop.config_hash(dict(n=len(images), first=images[0].tobytes().hex()[:64],
                                     src=Path(captions.__file__).read_text()))
    cached = cifar.cache_dir() / f"caption-ids-{key}.npy"
    if cached.is_file():
        return torch.from_numpy(np.load(cached))
    caps = [captions.caption(int(l), im) for im, l in zip(images, labels)]
    ids = tokenizer(caps, padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids
    np.save(cached, ids.astype(np.int64))
    return torch.from_numpy(ids.astype(np.int64))


def to_model_range(uint8_batch):
    return torch.from_numpy(uint8_batch).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def load_classifier(folder, dev):
    """The pack's classifier, frozen, taking images in the model range [-1, 1]."""
    from lgaptools import classifiers
    net = classifiers.load_frozen(folder)[0].to(dev)
    return lambda x: net((x + 1) / 2)


def x0_from_eps(xt, eps, a):
    """The one-step estimate of the clean image from x_t and the predicted noise at alpha_cumprod a."""
    return (xt - (1 - a).sqrt() * eps) / a.sqrt()


def consistency_loss(classify, x0, x0_hat, temp):
    """KL(classifier on the clean image || classifier on the denoiser's estimate), times temp^2."""
    with torch.no_grad():
        target = F.softmax(classify(x0) / temp, dim=-1)
    logq = F.log_softmax(classify(x0_hat.clamp(-1, 1)) / temp, dim=-1)
    return F.kl_div(logq, target, reduction="batchmean") * temp * temp


@torch.no_grad()
def validate(unet, text, x0, ids, alphas_cumprod, seed=1234, dev=torch.device("cpu"), classify=None, labels=None,
             empty_ids=None):
    unet.eval(); text.eval()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g).to(dev)
    x0, ids, alphas_cumprod = x0.to(dev), ids.to(dev), alphas_cumprod.to(dev)
    out = {}

    def predict_noise(xt, t, caption_ids):  # in chunks of 250 images
        ctx = torch.cat([text(caption_ids[i:i + 250])[0] for i in range(0, len(caption_ids), 250)])
        return torch.cat([unet(xt[i:i + 250], t, encoder_hidden_states=ctx[i:i + 250]).sample
                          for i in range(0, len(xt), 250)])

    def accuracy(images):
        return float((classify(images).argmax(-1).cpu() == labels).float().mean())

    if classify is not None:
        out["val_acc_clean"] = accuracy(x0)
    for t in (50, 100, 200, 300):
        a = alphas_cumprod[t]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        eps = predict_noise(xt, t, ids)
        x0_hat = x0_from_eps(xt, eps, a).clamp(-1, 1)
        mse01 = ((x0_hat - x0) / 2).pow(2).mean(dim=(1, 2, 3))
        out[f"val_mse_t{t}"] = float(F.mse_loss(eps, noise))
        out[f"val_psnr_t{t}"] = float((-10 * torch.log10(mse01)).mean())
        if classify is not None:
            out[f"val_acc_t{t}"] = accuracy(x0_hat)
        if classify is not None and t == 100:
            # The same images guided by the empty caption, and by another image's caption (mostly another
            # class: the captioner is wrong on ~30% of real inputs, and the denoiser must not follow it).
            for name, other in (("empty", empty_ids.expand_as(ids)), ("wrong", ids.roll(7, 0))):
                out[f"val_acc_t{t}_{name}"] = accuracy(x0_from_eps(xt, predict_noise(xt, t, other), a).clamp(-1, 1))
    unet.train(); text.train()
    return out


def compact_vocabulary(text, tokenizer, used_ids, folder):
    """Keeps only the token embeddings training ever updated (the captions' tokens and the special
    tokens) and renumbers them: the full CLIP table is 49,408 × hidden, almost all of it untrained random
    rows, and would be a third of the pack. The tokenizer keeps CLIP's merges; vocab.json lists the kept
    tokens with their new ids, and any other token maps to <|endoftext|> (CLIPTokenizer's unk) — which
    the untrained rows were no better than. Returns the number of tokens kept."""
    keep = sorted(set(used_ids) | {tokenizer.bos_token_id, tokenizer.eos_token_id})
    inverse = {v: k for k, v in tokenizer.get_vocab().items()}
    emb = text.text_model.embeddings.token_embedding
    new = torch.nn.Embedding(len(keep), emb.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(emb.weight[keep])
    text.text_model.embeddings.token_embedding = new
    text.config.vocab_size = len(keep)
    text.config.bos_token_id = keep.index(tokenizer.bos_token_id)
    text.config.eos_token_id = keep.index(tokenizer.eos_token_id)
    text.config.pad_token_id = keep.index(tokenizer.eos_token_id)
    folder = Path(folder)
    cliptok.write_tokenizer_folder(folder)
    (folder / "vocab.json").write_text(json.dumps({inverse[old]: i for i, old in enumerate(keep)}, ensure_ascii=False))
    # Re-save through transformers so tokenizer_config.json's special-token ids follow the new numbering
    # (it would otherwise keep CLIP's 49406/49407).
    from transformers import CLIPTokenizer
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                  pad_token="<|endoftext|>").save_pretrained(str(folder))
    return len(keep)


def export(unet, text, ema_unet, ema_text, pack):
    from diffusers import DDIMScheduler
    from transformers import CLIPTokenizer
    pack = Path(pack)
    unet.load_state_dict(ema_unet)
    text.load_state_dict(ema_text)
    tok_dir = cifar.cache_dir() / "clip-tokenizer"
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir)) if (tok_dir / "vocab.json").is_file() else cliptok.write_tokenizer_folder(tok_dir)
    images, labels, _ = cifar.load("train")
    used = torch.unique(caption_ids(images, labels, tokenizer)).tolist()
    kept = compact_vocabulary(text, tokenizer, used, pack / "tokenizer")
    unet.to(torch.float16).save_pretrained(pack / "unet", safe_serialization=True)
    text.to(torch.float16).save_pretrained(pack / "text_encoder", safe_serialization=True)
    DDIMScheduler(**SCHEDULER).save_pretrained(pack / "scheduler")
    # The compact tokenizer must give the trained model the same ids for every training caption.
    check = CLIPTokenizer.from_pretrained(str(pack / "tokenizer"))
    caps = [captions.caption(int(l), im) for im, l in zip(images[:2000], labels[:2000])]
    full = tokenizer(caps, padding="max_length", max_length=77).input_ids
    compact = check(caps, padding="max_length", max_length=77).input_ids
    remap = {old: i for i, old in enumerate(sorted(set(used) | {tokenizer.bos_token_id, tokenizer.eos_token_id}))}
    assert all([remap[t] for t in f] == c for f, c in zip(full, compact)), "compact vocabulary changes caption ids"
    print(f"exported EMA weights to {pack} (text vocabulary compacted to {kept} tokens)")


def learning_rate(args, step, budget):
    """Linear warm-up to --lr, then constant, or a cosine decay to --lr-final at --steps (or at the end of
    --schedule-minutes)."""
    warm = min(1.0, (step + 1) / args.warmup)
    if args.lr_final is None:
        return args.lr * warm
    if args.schedule_minutes:
        frac = budget.fraction(step)
    else:
        frac = min(1.0, max(0.0, (step - args.warmup) / max(1, args.steps - args.warmup)))
    return warm * (args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * frac)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="medium", choices=sorted(ARCHS))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--drop", type=float, default=0.15, help="caption dropout probability (CFG)")
    p.add_argument("--low-frac", type=float, default=0.85)
    p.add_argument("--low-max", type=int, default=500)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder (default ~/.cache/lgap/train/diffusion-ARCH)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (pilots)")
    p.add_argument("--export", default=None, metavar="PACK", help="export EMA weights from the checkpoint and exit")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start a second stage from another run's checkpoint.pt (weights, EMA, optimizer state; same "
                        "architecture), e.g. with a narrower timestep range (--low-max) and a decaying learning rate")
    p.add_argument("--classifier", default=None, metavar="FOLDER",
                   help="classifier folder for the consistency loss (and the accuracy of x0_hat in validation)")
    p.add_argument("--cls-weight", type=float, default=0.0, help="weight of the classifier-consistency loss")
    p.add_argument("--cls-max-t", type=int, default=150, help="the consistency loss covers timesteps below this")
    p.add_argument("--cls-temp", type=float, default=1.0, help="softmax temperature of the consistency loss")
    p.add_argument("--wrong-caption", type=float, default=0.0,
                   help="probability that a captioned sample gets another training image's caption instead, so "
                        "the denoiser learns not to trust a caption the image contradicts (at inference the "
                        "captioner is wrong on ~30%% of images)")
    p.add_argument("--lr-final", type=float, default=None,
                   help="cosine decay from --lr to this after warm-up, reached at --steps (which then becomes part "
                        "of the configuration); default: constant")
    trainloop.add_run_arguments(p)
    args = p.parse_args()

    threads = trainloop.setup_threads()
    dev = trainloop.device(args.device)
    config = dict(kind="diffusion", arch=args.arch, unet=unet_config(args.arch), text=TEXT, scheduler=SCHEDULER,
                  batch=args.batch, lr=args.lr, warmup=args.warmup, drop=args.drop, low_frac=args.low_frac,
                  low_max=args.low_max, ema=args.ema, seed=args.seed)
    # --steps is not part of the configuration while the learning rate is constant after warm-up, so a
    # run can be extended by resuming with a larger --steps; a decaying one ends at --steps.
    if args.lr_final is not None:
        config.update(lr_final=args.lr_final, steps=args.steps)
    if args.init_from:
        config.update(init_from=trainloop.repo_relative(args.init_from))
    if args.cls_weight > 0:
        if not args.classifier:
            raise SystemExit("--cls-weight needs --classifier")
        config.update(classifier=trainloop.repo_relative(args.classifier), cls_weight=args.cls_weight,
                      cls_max_t=args.cls_max_t, cls_temp=args.cls_temp)
    if args.wrong_caption > 0:
        config.update(wrong_caption=args.wrong_caption)
    if args.schedule_minutes:
        if args.lr_final is None:
            raise SystemExit("--schedule-minutes needs --lr-final (the cosine it times)")
        config.update(schedule_minutes=args.schedule_minutes)
    out = Path(args.out or cifar.cache_dir() / "train" / f"diffusion-{args.arch}")
    ckpt = trainloop.Checkpointer(out, config, every_s=args.ckpt_minutes * 60)
    trainloop.seed_everything(args.seed)
    unet, text = build(config)
    print(f"unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params, "
          f"text encoder {sum(p.numel() for p in text.parameters()) / 1e6:.2f}M, torch threads {threads}, "
          f"device {dev}", flush=True)
    step = 0
    state = ckpt.load()
    if args.export:
        export(unet, text, *trainloop.export_weights(state, out, "ema_unet", "ema_text"), args.export)
        return
    trainloop.check_resumable(state, args, ckpt.path)
    unet.to(dev); text.to(dev)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema_u, ema_t = trainloop.EMA(unet, args.ema), trainloop.EMA(text, args.ema)
    if state:
        unet.load_state_dict(state["unet"]); text.load_state_dict(state["text"])
        opt.load_state_dict(state["opt"]); ema_u.load_state_dict(state["ema_unet"]); ema_t.load_state_dict(state["ema_text"])
        step = state["step"]
        print(f"resumed from {ckpt.path} at step {step}", flush=True)
    elif args.init_from:
        src = Path(args.init_from).expanduser().resolve()
        src_config = json.loads((src.parent / "config.json").read_text()) if (src.parent / "config.json").is_file() else {}
        for key in ("unet", "text", "scheduler"):
            if src_config.get(key) != config[key]:
                raise SystemExit(f"--init-from {src}: its run has a different {key} configuration "
                                 f"(or no config.json beside it); a second stage needs the same architecture")
        init = trainloop.load_file(src)
        if init.get("slim"):
            # EMA weights only (a GPU run's --slim file): train on from the average, with a fresh optimizer.
            weights_u, weights_t = trainloop.export_weights(init, src, "ema_unet", "ema_text")
            unet.load_state_dict(weights_u); text.load_state_dict(weights_t)
            ema_u.load_state_dict(weights_u); ema_t.load_state_dict(weights_t)
        else:
            unet.load_state_dict(init["unet"]); text.load_state_dict(init["text"])
            opt.load_state_dict(init["opt"]); ema_u.load_state_dict(init["ema_unet"]); ema_t.load_state_dict(init["ema_text"])
        print(f"second stage from {src} (its step {init['step']}{', EMA weights only' if init.get('slim') else ''})",
              flush=True)

    from transformers import CLIPTokenizer
    tok_dir = cifar.cache_dir() / "clip-tokenizer"
    tokenizer = cliptok.write_tokenizer_folder(tok_dir) if not (tok_dir / "vocab.json").is_file() \
        else CLIPTokenizer.from_pretrained(str(tok_dir))
    images, labels, _ = cifar.load("train")
    tr, va = split_indices(len(images))
    ids = caption_ids(images, labels, tokenizer)
    empty_ids = torch.tensor(tokenizer("", padding="max_length", max_length=77).input_ids).to(dev)
    x_val, ids_val = to_model_range(images[va]), ids[va]
    labels_val = torch.from_numpy(np.asarray(labels)[va]).long()
    classify = load_classifier(args.classifier, dev) if args.classifier else None
    betas = torch.linspace(SCHEDULER["beta_start"], SCHEDULER["beta_end"], 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, 0).float().to(dev)

    rng = np.random.default_rng(args.seed * 1000003 + step)
    progress = trainloop.Progress(args.steps, args.batch, step, out / "log.jsonl")
    budget = trainloop.Budget(args.steps, args.schedule_minutes)
    t_end = time.time() + args.minutes * 60 if args.minutes else None
    losses, cls_losses = [], []
    if args.init_from and step == 0:
        # Where the second stage starts from, measured the same way as its progress.
        progress.report(0, **validate(unet, text, x_val, ids_val, alphas_cumprod, dev=dev, classify=classify,
                                      labels=labels_val, empty_ids=empty_ids))
    unet.train(); text.train()
    while not budget.done(step):
        idx = rng.choice(tr, size=args.batch, replace=False)
        batch = images[idx]
        flip = rng.random(args.batch) < 0.5
        batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        x0 = to_model_range(np.ascontiguousarray(batch)).to(dev, non_blocking=True)
        tok = ids[idx].to(dev)
        if args.wrong_caption > 0:
            swap = torch.from_numpy(rng.random(args.batch) < args.wrong_caption).to(dev)
            tok[swap] = ids[rng.choice(tr, size=int(swap.sum()))].to(dev)
        tok[torch.from_numpy(rng.random(args.batch) < args.drop).to(dev)] = empty_ids
        low = rng.random(args.batch) < args.low_frac
        t = np.where(low, rng.integers(0, args.low_max, args.batch), rng.integers(0, 1000, args.batch))
        t = torch.from_numpy(t).to(dev)
        noise = torch.randn_like(x0)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        lr = learning_rate(args, step, budget)
        for group in opt.param_groups:
            group["lr"] = lr
        with trainloop.autocast(dev):
            ctx = text(tok)[0]
            pred = unet(xt, t, encoder_hidden_states=ctx).sample
        loss = F.mse_loss(pred.float(), noise)
        if args.cls_weight > 0:
            near = t < args.cls_max_t
            if bool(near.any()):
                x0_hat = x0_from_eps(xt[near], pred[near].float(), a[near])
                cls_loss = consistency_loss(classify, x0[near], x0_hat, args.cls_temp)
                loss = loss + args.cls_weight * cls_loss
                cls_losses.append(cls_loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        # A second stage continues the first one's average (no EMA warm-up that would overwrite it).
        ema_step = None if args.init_from else step
        ema_u.update(unet, ema_step); ema_t.update(text, ema_step)
        step += 1
        losses.append(loss.detach())  # read every 25 steps, so a GPU runs ahead of the loop
        last = budget.done(step)
        metrics = {}
        if step % args.val_every == 0 or last:
            saved_u, saved_t = unet.state_dict(), text.state_dict()
            saved_u = {k: v.clone() for k, v in saved_u.items()}; saved_t = {k: v.clone() for k, v in saved_t.items()}
            unet.load_state_dict(ema_u.state_dict()); text.load_state_dict(ema_t.state_dict())
            metrics = validate(unet, text, x_val, ids_val, alphas_cumprod, dev=dev, classify=classify,
                               labels=labels_val, empty_ids=empty_ids)
            unet.load_state_dict(saved_u); text.load_state_dict(saved_t)
        if step % 25 == 0 or step <= 3 or metrics:
            if cls_losses:
                metrics["cls_loss"] = float(torch.stack(cls_losses[-25:]).mean())
            progress.report(step, loss=float(torch.stack(losses[-25:]).mean()), lr=lr, **metrics)
            losses, cls_losses = losses[-25:], cls_losses[-25:]
        stop = t_end is not None and time.time() > t_end
        if ckpt.due() or last or stop:
            ckpt.save(unet=unet.state_dict(), text=text.state_dict(), opt=opt.state_dict(),
                      ema_unet=ema_u.state_dict(), ema_text=ema_t.state_dict(), step=step)
        if stop:
            print(f"stopping after {args.minutes} min at step {step}", flush=True)
            break
    if args.slim:
        trainloop.write_slim(args.slim, ckpt.path, ["ema_unet", "ema_text"])
        print(f"wrote the EMA weights (fp16) to {args.slim}", flush=True)


if __name__ == "__main__":
    main()
