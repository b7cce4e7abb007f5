"""Builds Hugging Face CLIPTokenizer files (vocab.json + merges.txt) from OpenAI's gzipped BPE merges.

The conversion is the deterministic one that CLIP's SimpleTokenizer performs in memory: the first line of
the merges file is a header; CLIP uses merges 1 .. 48894; the vocabulary is the 256 byte characters, the
same with "</w>", one entry per merge (its two halves joined), then <|startoftext|> and <|endoftext|>
(ids 49406 and 49407), 49,408 entries in all.
"""
import gzip
import json
from pathlib import Path

from .cifar import SHARED

BPE_GZ = SHARED / "data" / "tokenizers" / "clip" / "bpe_simple_vocab_16e6.txt.gz"


def bytes_to_unicode():
    """GPT-2/CLIP's reversible byte → printable-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_merges(path=BPE_GZ):
    if not Path(path).is_file():
        raise FileNotFoundError(f"CLIP BPE merges not found: {path}")
    lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    if len(merges) != 48894 or any(len(m) != 2 for m in merges):
        raise ValueError(f"{path}: expected 48894 merge pairs, got {len(merges)}")
    return merges


def write_tokenizer_folder(out_dir, model_max_length=77):
    """Writes vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json (CLIPTokenizer)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = read_merges()
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    with open(out / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    # Load through transformers once so the config files are exactly what save_pretrained writes.
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=model_max_length,
                        pad_token="<|endoftext|>")
    tok.save_pretrained(str(out))
    return tok
