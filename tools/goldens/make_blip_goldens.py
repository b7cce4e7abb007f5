#!/usr/bin/env python3
"""Writes the BLIP captioner parity fixtures under Tests/Fixtures/blip/.

- model/: a tiny randomly initialised BlipForConditionalGeneration (vision 32 wide, 2 layers, 2 heads,
  48x48 images in 8x8 patches; text decoder 32 wide, 2 layers, 2 heads) saved with save_pretrained
  (safetensors), plus a BlipProcessor (BlipImageProcessor 48x48 bicubic + slow BertTokenizer on the
  first 5,000 lines of ../shared bert-base-uncased vocab.txt, with BLIP's [DEC] bos and [ENC] added),
  so the folder holds exactly the files of a Hugging Face BLIP folder. Weights are drawn with a larger
  spread than transformers' init (std 0.2) and [SEP] gets a logit bias, so that greedy and beam search
  produce varied captions of varied lengths.
- images/NN.png: 16 RGB images: 8 CIFAR-10 test-dev images (32x32, upsampled to 48) and 8 random images
  of other sizes (non-square, up- and down-sampled).
- golden.safetensors: pixel_values from the processor, the vision model's last_hidden_state (post
  layer norm, what generate() cross-attends to), and decoder logits for fixed input_ids on two images.
- generation.json: for each case, the generate() keyword arguments, the sequences (one padded row per
  image, batch of 16) and, for beam search, sequences_scores; plus the decoded captions.
- beam_scorer.json: transformers' BeamSearchScorer driven directly with random log-probabilities (120
  scenarios over num_beams, length_penalty, early_stopping, prompt length and max_length): each step's
  candidates, chosen continuations and done flag, and the finalized sequence and score.
- wordpiece.json: token ids from transformers' slow BertTokenizer (BLIP's added tokens) for a list of
  strings, with the full ../shared vocab ("full", loaded from the legacy layout whose JSON files are in
  tokenizer-legacy/) and the fixture vocab ("fixture", model/), and decode() outputs (skip_special_tokens
  True and False) for id lists.

Run: OPENBLAS_NUM_THREADS=1 $LGAP_PYTHON tools/goldens/make_blip_goldens.py
"""
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from lgaptools import locations  # noqa: E402

ROOT = locations.repo()
from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor  # noqa: E402

from lgaptools import cifar  # noqa: E402

OUT = ROOT / "Tests" / "Fixtures" / "blip"
BERT_VOCAB = cifar.SHARED / "data" / "tokenizers" / "bert-base-uncased" / "vocab.txt"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
torch.manual_seed(7)
rng = np.random.default_rng(7)


def blip_tokenizer(vocab_file):
    tok = BertTokenizer(str(vocab_file), do_lower_case=True)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tok


def make_model(tok):
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=48, patch_size=8, hidden_act="gelu", layer_norm_eps=1e-5)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=64, hidden_act="gelu",
                bos_token_id=tok.convert_tokens_to_ids("[DEC]"), pad_token_id=tok.pad_token_id,
                sep_token_id=tok.sep_token_id)
    model = BlipForConditionalGeneration(BlipConfig(vision_config=vision, text_config=text)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
            else:
                p.normal_(0, 0.2)
        # Make [SEP] (eos) likely enough that some captions end before max_length.
        model.text_decoder.cls.predictions.bias[tok.sep_token_id] += 3.5
    return model


def load_images():
    images = []
    with tarfile.open(cifar.archive_path("test"), "r:gz") as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        for m in members[::1000][:8]:
            images.append(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB"))
    for w, h in [(40, 24), (64, 50), (17, 33), (100, 60), (48, 48), (31, 80), (60, 45), (9, 12)]:
        # Smooth random images (upsampled noise) so resizing has structure to work on.
        small = rng.integers(0, 256, (max(2, h // 4), max(2, w // 4), 3), dtype=np.uint8)
        noisy = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        arr = np.asarray(noisy).astype(np.int16) + rng.integers(-20, 21, (h, w, 3))
        images.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return images


GENERATION_CASES = {
    "greedy": dict(num_beams=1, min_length=5, max_length=20),
    "beam3": dict(num_beams=3, min_length=5, max_length=20),
    "beam3_penalties": dict(num_beams=3, min_length=5, max_length=20, repetition_penalty=1.5, length_penalty=0.6),
    "beam3_early": dict(num_beams=3, min_length=5, max_length=20, early_stopping=True, length_penalty=2.0),
    "beam2_never": dict(num_beams=2, min_length=3, max_length=16, early_stopping="never", length_penalty=1.5),
    "greedy_penalty": dict(num_beams=1, min_length=5, max_length=20, repetition_penalty=1.3),
    "defaults": dict(),
    "prompt_greedy": dict(num_beams=1, min_length=5, max_length=20, prompt="a picture of"),
    "prompt_beam3": dict(num_beams=3, min_length=5, max_length=20, prompt="a picture of"),
}

WORDPIECE_STRINGS = [
    "", " ", "a", "A", "a cat", "a picture of a cat", "a picture of", "A Picture Of A CAT.",
    "a dog sitting on a couch", "two cats sleeping on a couch.", "a man riding a horse on the beach",
    "the quick brown fox jumps over the lazy dog", "Hello, world!", "hello , world !", "it's a dog's life",
    "don't stop", "I'm here", "we've been there", "they're gone", "isn't it?", "'quoted'", "\"double quoted\"",
    "a photo of a small white airplane in a blue sky", "a dark picture of a grey ship on blue water",
    "a brown horse on green grass", "123", "3.14159", "1,000,000", "phone: 555-1234", "2023-09-19",
    "100%", "$5.99", "#hashtag", "@user", "e-mail", "foo_bar", "C++", "a/b/c", "x=y+z", "(parens)",
    "[brackets]", "{braces}", "<angle>", "semi;colon:colon", "question?!", "ellipsis...", "dash — dash",
    "quotes “curly” ‘single’", "naïve café", "résumé", "Crème Brûlée", "São Paulo", "Zürich", "Ångström",
    "niño", "façade", "ÉCOLE", "Ελληνικά", "ΟΔΟΣ", "Σ", "русский текст", "Москва", "日本語のテキスト",
    "中文字符", "한국어", "ไทย", "عربى", "עברית", "हिन्दी", "emoji 😀 test", "🐱🐶", "👍🏽", "a\tb\nc\rd",
    "multiple    spaces", "  leading and trailing  ", "\u00a0nbsp\u00a0", "zero\u200bwidth", "soft\u00adhyphen",
    "control\x07char", "null\x00char", "replacement\ufffdchar", "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 99, "a" * 100, "a" * 101, "b" * 150, "x" * 200 + " y", "unbelievably", "unaffable", "playing",
    "[DEC] a photo", "[DEC]", "[ENC]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "[dec] a photo",
    "[Dec]", "a [SEP] b", "a[SEP]b", "[CLS] hello [SEP]", "x[DEC]y", "[DEC][ENC]", "[ DEC ]",
    "MiXeD CaSe WoRdS", "CamelCaseIdentifier", "ALLCAPS", "mIxEd123NuMbErS", "İstanbul", "straße",
    "ﬁnance", "Ⅻ", "①②③", "½ cup", "x²", "H₂O", "°C", "™", "©2024", "ß", "ǅ", "ﬀ",
    "a\u0301", "e\u0300\u0301", "\u0301alone", "tab\there", "line\nbreak", "crlf\r\nend",
    "the the the the", "a a a a a a a", "...", "!!!", "???", ",,,", "'", "''", "'''", "a ' b", "a 's b",
    "n't", "a n't", "won't", "can't", "shouldn't've", "y'all", "ma'am", "o'clock", "rock 'n' roll",
    "end.", "end .", "end ,", "end !", "end ?", "a , b , c", "hyphen-ated-word", "under_score",
    "www.example.com", "https://example.com/path?q=1&r=2", "user@example.com", "file.txt", "v1.2.3",
    "1st 2nd 3rd 4th", "12:30pm", "3x4", "4k", "10,000 feet", "-5", "+5", "5-", "a-b-c-d-e",
]


def beam_scorer_goldens(count=120):
    """Drives transformers' BeamSearchScorer (batch size 1) with random log-probabilities over a
    6-token vocabulary where [SEP] (id 2) is common, as _beam_search does: every step's top 2·num_beams
    candidates, the scorer's chosen continuations and done flag, and finalize()'s sequence and score."""
    from transformers.generation.beam_search import BeamSearchScorer
    gen = torch.Generator().manual_seed(11)
    vocab, eos = 6, 2
    scenarios = []
    for k in range(count):
        nb = [2, 3, 4][k % 3]
        lp = [1.0, 0.5, 2.0, -0.5, 0.0, 1.3][(k // 3) % 6]
        es = [False, True, "never"][(k // 18) % 3]
        prompt_len = [1, 2, 4][k % 4 % 3]
        max_length = prompt_len + 3 + k % 8
        scorer = BeamSearchScorer(batch_size=1, num_beams=nb, device="cpu", length_penalty=lp, do_early_stopping=es,
                                  max_length=max_length)
        input_ids = torch.full((nb, prompt_len), 5)
        beam_scores = torch.zeros(nb)
        beam_scores[1:] = -1e9
        steps = []
        while True:
            logp = torch.log_softmax(torch.randn(nb, vocab, generator=gen) * 2.5, dim=-1)
            scores = (logp + beam_scores[:, None]).view(1, -1)
            top_s, top_i = torch.topk(scores, 2 * nb, dim=1, largest=True, sorted=True)
            beams, tokens = top_i // vocab, top_i % vocab
            out = scorer.process(input_ids, top_s, tokens, beams, pad_token_id=0, eos_token_id=eos,
                                 decoder_prompt_len=prompt_len)
            steps.append(dict(scores=top_s[0].tolist(), tokens=tokens[0].tolist(), beams=beams[0].tolist(),
                              next_scores=out["next_beam_scores"].tolist(), next_tokens=out["next_beam_tokens"].tolist(),
                              next_beams=out["next_beam_indices"].tolist(), done=bool(scorer.is_done)))
            beam_scores = out["next_beam_scores"]
            input_ids = torch.cat([input_ids[out["next_beam_indices"]], out["next_beam_tokens"][:, None]], dim=-1)
            if scorer.is_done or input_ids.shape[-1] >= max_length:
                break
        final = scorer.finalize(input_ids, beam_scores, None, None, max_length=max_length, pad_token_id=0,
                                eos_token_id=eos, decoder_prompt_len=prompt_len)
        scenarios.append(dict(num_beams=nb, length_penalty=lp, early_stopping=es, prompt_length=prompt_len,
                              max_length=max_length, eos=eos, steps=steps, sequence=final["sequences"][0].tolist(),
                              score=float(final["sequence_scores"][0])))
    return scenarios


def wordpiece_strings():
    strings = list(WORDPIECE_STRINGS)
    # Real-looking captions from the caption vocabulary, and random mixtures of vocab words.
    words = ["a", "an", "the", "cat", "dog", "bird", "horse", "ship", "truck", "car", "deer", "frog",
             "airplane", "on", "in", "of", "with", "picture", "photo", "small", "large", "red", "blue",
             "green", "grey", "white", "black", "brown", "sky", "water", "road", "grass", "ground",
             "background", "dark", "bright", "sitting", "standing", "flying", "running", "near", "next",
             "to", "it", "is", "are", ".", ",", "!", "?", "'s", "n't", "kitten", "puppy", "jet", "toad"]
    for _ in range(200):
        n = int(rng.integers(1, 14))
        picked = [words[int(i)] for i in rng.integers(0, len(words), n)]
        s = " ".join(picked)
        if rng.random() < 0.3:
            s = s.capitalize()
        if rng.random() < 0.2:
            s = s.upper()
        strings.append(s)
    return strings


def wordpiece_goldens(tok_fixture):
    strings = wordpiece_strings()
    out = {"strings": strings}
    if BERT_VOCAB.is_file():
        tok_full = legacy_full_tokenizer()
        out["full"] = {
            "vocab_size": tok_full.vocab_size, "len": len(tok_full),
            "encode": [tok_full.encode(s) for s in strings],
            "encode_plain": [tok_full.encode(s, add_special_tokens=False) for s in strings],
        }
        id_lists = decode_inputs(tok_full, strings)
        out["full"]["decode_ids"] = id_lists
        out["full"]["decode"] = [tok_full.decode(ids, skip_special_tokens=True) for ids in id_lists]
        out["full"]["decode_keep_special"] = [tok_full.decode(ids) for ids in id_lists]
    out["fixture"] = {
        "vocab_size": tok_fixture.vocab_size, "len": len(tok_fixture),
        "encode": [tok_fixture.encode(s) for s in strings],
        "encode_plain": [tok_fixture.encode(s, add_special_tokens=False) for s in strings],
    }
    id_lists = decode_inputs(tok_fixture, strings)
    out["fixture"]["decode_ids"] = id_lists
    out["fixture"]["decode"] = [tok_fixture.decode(ids, skip_special_tokens=True) for ids in id_lists]
    out["fixture"]["decode_keep_special"] = [tok_fixture.decode(ids) for ids in id_lists]
    return out


def legacy_full_tokenizer():
    """BERT's full vocabulary with BLIP's added tokens, saved in the legacy layout (vocab.txt,
    special_tokens_map.json, added_tokens.json, no tokenizer_config.json). The two JSON files go to
    tokenizer-legacy/ (vocab.txt stays in ../shared); the goldens come from the reloaded tokenizer."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        blip_tokenizer(BERT_VOCAB).save_pretrained(tmp)
        (Path(tmp) / "tokenizer_config.json").unlink()
        legacy = OUT / "tokenizer-legacy"
        legacy.mkdir(exist_ok=True)
        for name in ["special_tokens_map.json", "added_tokens.json"]:
            shutil.copy(Path(tmp) / name, legacy / name)
        tok = BertTokenizer.from_pretrained(tmp)
    assert tok.convert_tokens_to_ids("[DEC]") == 30522 and tok.bos_token == "[DEC]", "legacy reload lost [DEC]"
    return tok


def decode_inputs(tok, strings):
    """Id lists to decode: encodings of the strings in generate()'s layout ([DEC] first, [SEP] last,
    [PAD] after), random id lists over the whole vocabulary, and out-of-range ids."""
    dec, sep, pad = tok.convert_tokens_to_ids("[DEC]"), tok.sep_token_id, tok.pad_token_id
    lists = []
    for s in strings[:150]:
        ids = tok.encode(s, add_special_tokens=False)
        lists.append([dec] + ids + [sep] + [pad] * int(rng.integers(0, 3)))
    for _ in range(120):
        n = int(rng.integers(1, 20))
        lists.append([int(i) for i in rng.integers(0, len(tok), n)])
    lists.append([dec, tok.convert_tokens_to_ids("[ENC]"), 1037, 2000])
    lists.append([])
    return lists


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "model").mkdir(parents=True)
    (OUT / "images").mkdir()

    # The fixture tokenizer: the first 5,000 lines of BERT's vocabulary.
    vocab_lines = BERT_VOCAB.read_text(encoding="utf-8").split("\n")[:5000]
    scratch = OUT / "vocab-scratch.txt"
    scratch.write_text("\n".join(vocab_lines) + "\n", encoding="utf-8")
    tok = blip_tokenizer(scratch)
    scratch.unlink()

    model = make_model(tok)
    image_processor = BlipImageProcessor(size={"height": 48, "width": 48}, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                         do_convert_rgb=True)
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tok)
    model.save_pretrained(OUT / "model", safe_serialization=True)
    processor.save_pretrained(OUT / "model")

    # Reload everything from the folder, as a user would.
    model = BlipForConditionalGeneration.from_pretrained(OUT / "model").eval()
    processor = BlipProcessor.from_pretrained(OUT / "model")
    tok = processor.tokenizer

    images = load_images()
    for i, im in enumerate(images):
        im.save(OUT / "images" / f"{i:02d}.png")
    images = [Image.open(OUT / "images" / f"{i:02d}.png") for i in range(len(images))]  # what Swift decodes

    pixel_values = processor(images=images, return_tensors="pt").pixel_values
    with torch.no_grad():
        vision = model.vision_model(pixel_values=pixel_values)[0]
        input_ids = torch.tensor([[tok.convert_tokens_to_ids("[DEC]"), 1037, 3861, 1997, 1037, 4937, 1012],
                                  [tok.convert_tokens_to_ids("[DEC]"), 2000, 2001, 4999, 102, 0, 5001]])
        logits = model(pixel_values=pixel_values[[0, 11]], input_ids=input_ids).logits
    save_file({"pixel_values": pixel_values.contiguous(), "vision_last_hidden_state": vision.contiguous(),
               "decoder_input_ids": input_ids.contiguous(), "decoder_logits": logits.contiguous()},
              str(OUT / "golden.safetensors"))

    generation = {}
    for name, kwargs in GENERATION_CASES.items():
        kwargs = dict(kwargs)
        prompt = kwargs.pop("prompt", None)
        inputs = processor(images=images, text=[prompt] * len(images) if prompt else None, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, synced_gpus=False, return_dict_in_generate=True, output_scores=True,
                                 **kwargs)
        seqs = out.sequences.tolist()
        texts = [tok.decode(s, skip_special_tokens=True) for s in seqs]
        case = dict(kwargs=kwargs, prompt=prompt, sequences=seqs, texts=texts)
        if kwargs.get("num_beams", 1) > 1:
            case["scores"] = out.sequences_scores.tolist()
        generation[name] = case
        lengths = [sum(1 for t in s if t != tok.pad_token_id) for s in seqs]
        print(f"{name}: lengths {lengths}; distinct captions {len(set(texts))}; e.g. {texts[0]!r}")
    # transformers' BLIP generate() reads its defaults from text_config, not generation_config.json: the
    # "defaults" case above runs without a generation_config.json override.
    (OUT / "generation.json").write_text(json.dumps(generation, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    (OUT / "beam_scorer.json").write_text(json.dumps(beam_scorer_goldens()) + "\n", encoding="utf-8")
    (OUT / "wordpiece.json").write_text(json.dumps(wordpiece_goldens(tok), ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
