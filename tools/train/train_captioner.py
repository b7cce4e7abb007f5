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
- Second stage (optional): --init-from starts from an exported captioner folder (same architecture;
  embedding and LM-head rows are matched by word, so a grown vocabulary keeps what was learnt);
  --teacher distils a classifier folder's soft labels (temperature --kd-temp, weight --kd) into the
  auxiliary head, which a ViT trained from scratch on 50k images needs far more epochs to learn alone
  (DeiT's observation); --noun-kd distils the same teacher's class distribution into the decoder at the
  class-noun token; --noun-weight up-weights that token in the LM loss, the one word the pack's
  consistency flag and the guidance depend on most.
- Resumable: a checkpoint every --ckpt-minutes in --out; the same command resumes; another configuration
  is refused. Validation on 1,000 held-out training images (every 50th): LM loss and, with greedy
  generation, how often the caption names the true class.

Run:    tools/train/run.sh tools/train/train_captioner.py --steps 8000
Export: tools/train/run.sh tools/train/train_captioner.py --export models/cifar10-mini
On a lent GPU machine (--device cuda, bf16 autocast, a cosine timed by --schedule-minutes): the runs that
made the shipped captioner are in tools/train/on_gpu.sh.
Writes: <out>/checkpoint.pt, <out>/log.jsonl; with --export: <pack>/captioner/ (config.json,
model.safetensors (fp16), vocab.txt, tokenizer files, preprocessor_config.json, generation_config.json).
"""
import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


def lm_loss(logits, ids, mask, noun_ids, noun_weight, smoothing):
    """BLIP's shifted LM loss (label smoothing as in its text decoder), with class-noun tokens weighted
    noun_weight times; noun_weight 1 gives transformers' own mean loss."""
    pred = logits[:, :-1].reshape(-1, logits.shape[-1])
    target = ids[:, 1:].reshape(-1)
    valid = mask[:, 1:].reshape(-1).float()
    per_token = F.cross_entropy(pred, target, reduction="none", label_smoothing=smoothing)
    weight = valid * torch.where(torch.isin(target, noun_ids), noun_weight, 1.0)
    return (per_token * weight).sum() / weight.sum()


def class_token_groups(tok):
    """[10, S] token ids of each class's nouns (the words mentioned_classes() looks for; padded by repeating
    the first) and a [10, S] validity mask: ids[valid] lists every class-noun token."""
    groups = [tok.convert_tokens_to_ids(captions.SYNONYMS[name]) for name in cifar.CLASSES]
    if any(tok.unk_token_id in g for g in groups):
        raise SystemExit("a class synonym is missing from the vocabulary")
    width = max(len(g) for g in groups)
    ids = torch.tensor([g + [g[0]] * (width - len(g)) for g in groups])
    valid = torch.tensor([[True] * len(g) + [False] * (width - len(g)) for g in groups])
    return ids, valid


def noun_distillation(logits, ids, mask, groups, teacher, temp):
    """KL(teacher || student) over the 10 classes at each caption's class-noun position: the student's
    class score sums its synonyms' probabilities (the caption picked one of them by hash), renormalised
    over the classes, so the decoder learns the teacher's whole class distribution, not only the label."""
    group_ids, group_valid = groups
    target = ids[:, 1:]
    is_noun = torch.isin(target, group_ids[group_valid]) & (mask[:, 1:] > 0)
    rows, cols = is_noun.nonzero(as_tuple=True)
    if len(rows) == 0:
        return logits.sum() * 0
    # Normalised over the class nouns alone: that the token is a noun at all is the LM loss's job.
    scaled = logits[rows, cols].float() / temp                                          # [K, V]
    per_class = F.log_softmax(scaled[:, group_ids].masked_fill(~group_valid, float("-inf")).logsumexp(-1), -1)
    q = F.softmax(teacher[rows] / temp, dim=-1)
    return temp * temp * F.kl_div(per_class, q, reduction="batchmean")


def init_from_folder(model, tok, folder):
    """Copies an exported captioner's weights into `model`: same architecture required; vocabulary rows
    (word embeddings, LM head) are matched by token, and words the old vocabulary lacks keep their
    fresh initialisation."""
    from transformers import BertTokenizer, BlipForConditionalGeneration
    folder = Path(folder)
    old = BlipForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32)
    old_tok = BertTokenizer.from_pretrained(folder)
    for part in ("vision_config", "text_config"):
        a, b = getattr(old.config, part).to_dict(), getattr(model.config, part).to_dict()
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        if any(a[k] != b[k] for k in keys) or a.get("patch_size") != b.get("patch_size"):
            raise SystemExit(f"{folder}: {part} differs from this run's architecture")
    old_vocab, new_vocab = old_tok.get_vocab(), tok.get_vocab()
    rows = [(new_vocab[w], i) for w, i in old_vocab.items() if w in new_vocab]
    new_state = model.state_dict()
    copied = 0
    for name, value in old.state_dict().items():
        if name not in new_state:
            continue
        target = new_state[name]
        if value.shape == target.shape and value.shape[0] != len(old_tok):
            target.copy_(value); copied += 1
        elif value.shape[0] == len(old_tok) and target.shape[0] == len(tok):
            for new_i, old_i in rows:
                target[new_i] = value[old_i]
            copied += 1
    print(f"initialised {copied} tensors from {folder} ({len(rows)} of {len(tok)} vocabulary rows)", flush=True)


def teacher_logits(folder, images, out, dev=torch.device("cpu")):
    """The classifier's logits on every training image, averaged with its horizontal flip (the augmentation
    the student sees most), computed once and cached beside the checkpoint under the weights' digest."""
    digest = hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()[:16]
    cache = Path(out) / f"teacher-logits-{digest}.npy"
    if cache.is_file():
        logits = np.load(cache)
        if len(logits) == len(images):
            return torch.from_numpy(logits)
    from lgaptools import classifiers
    net = classifiers.load_frozen(folder)[0].to(dev)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 500):
            x = torch.from_numpy(images[i:i + 500]).permute(0, 3, 1, 2).float().div(255.0).to(dev)
            out.append((0.5 * (net(x) + net(torch.flip(x, dims=[3])))).cpu())
    logits = torch.cat(out)
    np.save(cache, logits.numpy())
    return logits


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
def validate(model, tok, images, labels, ids, mask, dev=torch.device("cpu")):
    model.eval()
    x, ids, mask = normalise(images).to(dev), ids.to(dev), mask.to(dev)
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
    p.add_argument("--init-from", default=None, metavar="FOLDER", help="exported captioner to start from")
    p.add_argument("--teacher", default=None, metavar="FOLDER", help="classifier folder distilled into the aux head")
    p.add_argument("--kd", type=float, default=0.7, help="share of the aux loss taken from the teacher")
    p.add_argument("--kd-temp", type=float, default=4.0)
    p.add_argument("--noun-weight", type=float, default=1.0, help="LM loss weight of class-noun tokens")
    p.add_argument("--noun-kd", type=float, default=0.0,
                   help="weight of the teacher's class distribution distilled at the class-noun token (needs --teacher)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder (default ~/.cache/lgap/train/captioner)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (pilots)")
    trainloop.add_run_arguments(p)
    p.add_argument("--export", default=None, metavar="PACK")
    args = p.parse_args()

    from transformers import BlipForConditionalGeneration
    threads = trainloop.setup_threads()
    dev = trainloop.device(args.device)
    out = Path(args.out or cifar.cache_dir() / "train" / "captioner")
    tok = make_tokenizer(out / "tokenizer")
    config = dict(kind="captioner", vision=VISION, text=TEXT, vocab=vocab_words(), steps=args.steps, batch=args.batch,
                  lr=args.lr, warmup=args.warmup, wd=args.weight_decay, aux=args.aux, seed=args.seed)
    # Stage-2 options join the hashed configuration only when used, so earlier runs still resume.
    if args.init_from:
        config["init_from"] = trainloop.repo_relative(args.init_from)
    if args.teacher:
        config.update(teacher=trainloop.repo_relative(args.teacher), kd=args.kd, kd_temp=args.kd_temp)
    if args.noun_weight != 1.0:
        config["noun_weight"] = args.noun_weight
    if args.noun_kd:
        if not args.teacher:
            raise SystemExit("--noun-kd needs --teacher")
        config["noun_kd"] = args.noun_kd
    if args.schedule_minutes:
        config["schedule_minutes"] = args.schedule_minutes
    ckpt = trainloop.Checkpointer(out, config, every_s=args.ckpt_minutes * 60)
    trainloop.seed_everything(args.seed)
    model = BlipForConditionalGeneration(blip_config(tok))
    aux_head = torch.nn.Linear(VISION["hidden_size"], 10)
    print(f"captioner {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, vocab {len(tok)}, "
          f"torch threads {threads}, device {dev}", flush=True)
    step = 0
    state = ckpt.load()
    if args.export:
        (ema_weights,) = trainloop.export_weights(state, out, "ema")
        model.load_state_dict(ema_weights)
        export(model, tok, args.export)
        return
    trainloop.check_resumable(state, args, ckpt.path)
    if not state and args.init_from:
        init_from_folder(model, tok, args.init_from)
    model.to(dev); aux_head.to(dev)
    params = list(model.parameters()) + list(aux_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    ema = trainloop.EMA(model, 0.999)
    if state:
        model.load_state_dict(state["model"]); aux_head.load_state_dict(state["aux"])
        opt.load_state_dict(state["opt"]); ema.load_state_dict(state["ema"]); step = state["step"]
        print(f"resumed from {ckpt.path} at step {step}", flush=True)

    images, labels, _ = cifar.load("train")
    va = np.arange(0, len(images), 50)
    tr = np.setdiff1d(np.arange(len(images)), va)
    ids, mask = encode_captions(tok, images, labels)
    groups = tuple(g.to(dev) for g in class_token_groups(tok))
    nouns = groups[0][groups[1]]
    soft = teacher_logits(args.teacher, images, out, dev).to(dev) if args.teacher else None
    rng = np.random.default_rng(args.seed * 1000003 + step)
    progress = trainloop.Progress(args.steps, args.batch, step, out / "log.jsonl")
    budget = trainloop.Budget(args.steps, args.schedule_minutes)
    t_end = time.time() + args.minutes * 60 if args.minutes else None
    losses, accs = [], []
    model.train()
    while not budget.done(step):
        idx = rng.choice(tr, size=args.batch, replace=False)
        x = normalise(augment(images[idx], rng)).to(dev, non_blocking=True)
        y = torch.from_numpy(labels[idx]).to(dev)
        b_ids, b_mask = ids[idx].to(dev), mask[idx].to(dev)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + np.cos(np.pi * budget.fraction(step)))
        for group in opt.param_groups:
            group["lr"] = lr
        with trainloop.autocast(dev):
            vision = model.vision_model(pixel_values=x)
            text = model.text_decoder(input_ids=b_ids, attention_mask=b_mask, encoder_hidden_states=vision[0])
            aux_logits = aux_head(vision[1])
        text_loss = lm_loss(text.logits.float(), b_ids, b_mask, nouns, args.noun_weight, TEXT["label_smoothing"])
        aux_logits = aux_logits.float()
        aux_loss = F.cross_entropy(aux_logits, y)
        if soft is not None:
            t = args.kd_temp
            kd = F.kl_div(F.log_softmax(aux_logits / t, 1), F.softmax(soft[idx] / t, 1), reduction="batchmean")
            aux_loss = (1 - args.kd) * aux_loss + args.kd * t * t * kd
        loss = text_loss + args.aux * aux_loss
        if args.noun_kd:
            # The class-noun logits sit at the position before the noun (the LM is shifted by one).
            loss = loss + args.noun_kd * noun_distillation(text.logits, b_ids, b_mask, groups, soft[idx], args.kd_temp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(model, None if "init_from" in config else step)
        step += 1
        # Kept on the device and read every 50 steps: a GPU then runs ahead of the Python loop.
        losses.append(text_loss.detach()); accs.append((aux_logits.argmax(1) == y).float().mean())
        last = budget.done(step)
        metrics = {}
        if step % args.val_every == 0 or last:
            live = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(ema.state_dict())
            metrics = validate(model, tok, images[va], labels[va], ids[va], mask[va], dev)
            model.load_state_dict(live)
        if step % 50 == 0 or step <= 3 or metrics:
            progress.report(step, lm_loss=float(torch.stack(losses[-50:]).mean()),
                            aux_acc=float(torch.stack(accs[-50:]).mean()), lr=lr, **metrics)
            losses, accs = losses[-50:], accs[-50:]
        stop = t_end is not None and time.time() > t_end
        if ckpt.due() or last or stop:
            ckpt.save(model=model.state_dict(), aux=aux_head.state_dict(), opt=opt.state_dict(), ema=ema.state_dict(),
                      step=step)
        if stop:
            print(f"stopping after {args.minutes} min at step {step}", flush=True)
            break
    if args.slim:
        trainloop.write_slim(args.slim, ckpt.path, ["ema"])
        print(f"wrote the EMA weights (fp16) to {args.slim}", flush=True)


if __name__ == "__main__":
    main()
