"""Deterministic captions for CIFAR-10 images, from the label and the pixels only.

CIFAR-10 ships no captions, so the default pack's captioner and text-conditioned denoiser are trained
on captions made here. The same (label, pixels) always gives the same caption:

1. Regions. The background is the 3-pixel border ring; its median colour is the background colour.
   The object is every pixel of the central 20x20 window whose colour differs from the background
   median by more than 0.15 (RGB distance in [0,1]); when fewer than 24 pixels qualify, the central
   12x12 window is used instead.
2. Colour names. The mean colour of a region is named from HSV with fixed thresholds (`colour_name`):
   black, white, grey, brown, red, orange, yellow, green, blue, purple, pink.
3. Scene words. The background noun depends on its colour and the class (`background_phrase`): sky for
   flying things, water for ships, road for vehicles on grey, grass on green, ground on earth tones,
   otherwise "a <colour> background". Size ("small"/"large") comes from the object's area, brightness
   ("dark"/"bright") from the mean luma of the image.
4. Choice. The class noun (one of the class's synonyms) and the template are picked from the SHA-256
   of the pixel bytes, so captions vary across images but never across runs.

Examples: "a brown horse on green grass", "a photo of a small white airplane in a blue sky",
"a dark picture of a grey ship on blue water".
"""
import colorsys
import hashlib
import re

import numpy as np

from .cifar import CLASSES

# The first synonym is the class's canonical noun. pack.json carries this table so the consistency flag
# (does the caption name the predicted class?) reads the same words the captions were made from.
SYNONYMS = {
    "airplane": ["airplane", "plane", "jet", "aircraft"],
    "automobile": ["car", "automobile"],
    "bird": ["bird"],
    "cat": ["cat", "kitten"],
    "deer": ["deer"],
    "dog": ["dog", "puppy"],
    "frog": ["frog", "toad"],
    "horse": ["horse", "pony"],
    "ship": ["ship", "boat"],
    "truck": ["truck", "lorry"],
}
COLOURS = ["black", "white", "grey", "brown", "red", "orange", "yellow", "green", "blue", "purple", "pink"]
FLYING = {"airplane", "bird"}
VEHICLES = {"automobile", "truck"}
TEMPLATES = [
    "a {size}{obj} {noun} {place}",
    "a photo of a {size}{obj} {noun} {place}",
    "a {obj} {noun} {place}",
    "a {light}picture of a {obj} {noun} {place}",
    "there is a {size}{obj} {noun} {place}",
    "a {size}{noun} {place}",
]


def colour_name(rgb):
    """Names a mean colour (floats in [0,1]) with fixed HSV thresholds."""
    h, s, v = colorsys.rgb_to_hsv(*[float(c) for c in rgb])
    hue = h * 360.0
    if v < 0.18:
        return "black"
    if s < 0.16:
        if v > 0.78:
            return "white"
        return "grey" if v > 0.3 else "black"
    if 15 <= hue < 50 and (v < 0.62 or s < 0.45):
        return "brown"
    if hue < 15 or hue >= 340:
        return "red" if v >= 0.45 else "brown"
    if hue < 40:
        return "orange"
    if hue < 70:
        return "yellow"
    if hue < 165:
        return "green"
    if hue < 255:
        return "blue"
    if hue < 290:
        return "purple"
    return "pink"


def background_phrase(label, colour):
    name = CLASSES[label]
    if name in FLYING and colour in ("blue", "white", "grey"):
        return f"in a {colour} sky"
    if name == "ship" and colour in ("blue", "green", "grey"):
        return f"on {colour} water"
    if name in VEHICLES and colour in ("grey", "black"):
        return f"on a {colour} road"
    if colour == "green":
        return "on green grass"
    if colour in ("brown", "orange", "yellow") and name not in FLYING:
        return f"on {colour} ground"
    return f"against a {colour} background"


def regions(img):
    """img float [32,32,3] in [0,1] → (object pixels [K,3], background pixels [M,3], object area fraction)."""
    border = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3),
                             img[3:-3, :3].reshape(-1, 3), img[3:-3, -3:].reshape(-1, 3)])
    bg_median = np.median(border, axis=0)
    centre = img[6:26, 6:26].reshape(-1, 3)
    dist = np.linalg.norm(centre - bg_median, axis=1)
    mask = dist > 0.15
    if mask.sum() >= 24:
        obj = centre[mask]
    else:
        obj = img[10:22, 10:22].reshape(-1, 3)
    return obj, border, mask.mean()


def caption(label, pixels):
    """label: class index 0..9; pixels: uint8 [32,32,3] RGB → caption string."""
    if pixels.shape != (32, 32, 3) or pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 [32,32,3], got {pixels.dtype} {pixels.shape}")
    img = pixels.astype(np.float64) / 255.0
    obj, border, area = regions(img)
    obj_colour = colour_name(obj.mean(axis=0))
    bg_colour = colour_name(np.median(border, axis=0))
    luma = float((img @ np.array([0.299, 0.587, 0.114])).mean())
    digest = hashlib.sha256(pixels.tobytes()).digest()
    synonyms = SYNONYMS[CLASSES[label]]
    noun = synonyms[digest[0] % len(synonyms)]
    template = TEMPLATES[digest[1] % len(TEMPLATES)]
    size = "small " if area < 0.3 else ("large " if area > 0.75 else "")
    light = "dark " if luma < 0.3 else ("bright " if luma > 0.68 else "")
    text = template.format(size=size, obj=obj_colour, noun=noun, light=light,
                           place=background_phrase(label, bg_colour))
    return " ".join(text.split())


def vocabulary():
    """Every word any caption can contain, sorted (the captioner's word-level vocabulary)."""
    words = set()
    for t in TEMPLATES:
        # Strip placeholders but keep the words glued to them ("{light}picture" → "picture").
        words.update(w for w in re.sub(r"\{[a-z]+\}", " ", t).split())
    for syn in SYNONYMS.values():
        words.update(syn)
    words.update(COLOURS)
    words.update(["small", "large", "dark", "bright", "in", "on", "a", "sky", "water", "road", "grass", "ground",
                  "against", "background"])
    return sorted(words)


def mentioned_classes(text):
    """Class indices whose synonyms occur as words of `text` (what the consistency flag checks)."""
    words = set(text.lower().replace(",", " ").replace(".", " ").split())
    return [i for i, c in enumerate(CLASSES) if words & set(SYNONYMS[c])]
