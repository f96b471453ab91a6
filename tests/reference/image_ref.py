"""Fixtures for io/image.h (decode_image) and io/image_resize.h (resize_bicubic, janus_preprocess), produced by the
real peers: Pillow decodes, converts and resizes; numpy normalises the way transformers' rescale/normalize do.

What Janus does with a picture (deepseek-ai/Janus, read, not imported): janus/utils/io.py load_pil_images opens it
with PIL.Image.open(...).convert("RGB"); janus/models/image_processing_vlm.py VLMImageProcessor.resize computes
the new size, calls torchvision.transforms.functional.resize(pil_img, size, BICUBIC, antialias=True) — on a PIL
image torchvision hands over to pil_img.resize((w, h), Image.BICUBIC) — and expand2square; preprocess then rescales
(transformers: x.astype(float64) * (1/255), cast to float32) and normalises ((x - mean) / std in float32).
janus_reference() below follows those lines literally (no torchvision / transformers here: their two calls are
replaced by what they run on a PIL image / numpy array).

Inputs are synthetic (numpy PCG64 seeds, gradients + noise + saturated edges). PNG variants are written by a small
PNG writer here (every colour type and bit depth, Adam7, gAMA / tRNS / tEXt chunks, mixed row filters, a short
palette) so that each is exactly what it claims; one RGB PNG and all JPEGs come from Pillow's own encoders.

Writes tests/data/parity/image/: the image files, manifest.json and arrays.bin (every expected array, little-endian,
at the offset the manifest gives: uint8 RGB [h, w, 3] or float32 [size, size, 3] channels-last).

Run: /usr/bin/python3 tests/reference/image_ref.py   (Debian python3-pil, python3-numpy; < 1 s, deterministic)
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "parity", "image")
BUDGET = 150_000  # bytes for the whole directory


# ---------------------------------------------------------------------------------------------------------------
# Synthetic pictures

def synth(w: int, h: int, seed: int, channels: int = 3) -> np.ndarray:
    """Gradients + noise + a saturated band and a black column: bicubic overshoots and must clip at both ends."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), ((x + 2 * y) % 7) * 40, (x * y) % 256]
    img = np.stack(planes[:channels], -1) + rng.normal(0, 25, (h, w, channels))
    if h >= 3:
        img[h // 3: h // 3 + max(1, h // 8)] = 255
    if w >= 3:
        img[:, w // 2] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# A PNG writer (PNG spec, ISO/IEC 15948): chunks, scanline filters 0-4, Adam7, sub-byte packing, 16-bit big-endian

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples: np.ndarray, bit_depth: int) -> bytes:
    if bit_depth == 16:
        return samples.astype(">u2").tobytes()
    if bit_depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // bit_depth
    out = bytearray((len(samples) + per - 1) // per)
    for i, v in enumerate(samples.tolist()):
        out[i // per] |= int(v) << (8 - bit_depth * (i % per + 1))
    return bytes(out)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, v in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out[i] = (v - pred) & 0xFF
    return bytes([kind]) + bytes(out)


def make_png(samples: np.ndarray, bit_depth: int, color_type: int, palette=None, trns: bytes | None = None,
             gama: int | None = None, interlace: bool = False, text: bytes | None = None) -> bytes:
    h, w = samples.shape[:2]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bpp = max(1, channels * bit_depth // 8)
    raw = bytearray()
    row_no = 0
    for xs, ys, dx, dy in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        sub = samples[ys::dy, xs::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue  # an empty Adam7 pass has no scanlines at all
        prev = b""
        for r in sub:
            packed = pack_row(r.reshape(-1), bit_depth)
            raw += filter_row(row_no % 5, packed, prev, bpp)  # every filter type, row by row
            prev = packed
            row_no += 1
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                                             1 if interlace else 0))
    if gama is not None:
        out += chunk(b"gAMA", struct.pack(">I", gama))
    if palette is not None:
        out += chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).tobytes())
    if trns is not None:
        out += chunk(b"tRNS", trns)
    if text is not None:
        out += chunk(b"tEXt", text)
    return out + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------------------------
# Janus's preprocessing, literally

def expand2square(pil_img, background_color):  # janus/models/image_processing_vlm.py
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def janus_reference(pil_img, image_size, min_size, image_mean, image_std):
    """VLMImageProcessor(image_size, min_size, image_mean, image_std).preprocess([pil_img]) -> [3, S, S] float32."""
    background_color = tuple([int(x * 255) for x in image_mean])  # __init__
    # resize()
    width, height = pil_img.size
    max_size = max(width, height)
    size = [
        max(int(height / max_size * image_size), min_size),
        max(int(width / max_size * image_size), min_size),
    ]
    if width <= 0 or height <= 0 or size[0] <= 0 or size[1] <= 0:
        raise ValueError("Invalid size!")
    # torchvision.transforms.functional.resize(pil_img, size, interpolation=BICUBIC, antialias=True): for a PIL
    # image, torchvision's _functional_pil.resize runs img.resize(tuple(size[::-1]), Image.BICUBIC).
    pil_img = pil_img.resize((size[1], size[0]), Image.BICUBIC)
    pil_img = expand2square(pil_img, background_color)
    x = np.array(pil_img)  # transformers' to_numpy_array
    x = np.transpose(x, (2, 0, 1))
    # preprocess(): transformers' image_transforms.rescale (float64 multiply, then astype float32)
    x = (x.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    # transformers' image_transforms.normalize, channels first: mean/std as arrays of the image's dtype
    mean = np.array(image_mean, dtype=x.dtype)
    std = np.array(image_std, dtype=x.dtype)
    x = ((x.T - mean) / std).T
    return x, (size[1], size[0])


# ---------------------------------------------------------------------------------------------------------------

class Writer:
    def __init__(self):
        self.blob = bytearray()
        self.files = {}
        self.seen = {}  # identical arrays (a source reused by several cases) are stored once

    def array(self, a: np.ndarray) -> dict:
        a = np.ascontiguousarray(a)
        dtype = {np.dtype(np.uint8): "u8", np.dtype(np.float32): "f32"}[a.dtype]
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        key = (dtype, a.shape, data)
        if key not in self.seen:
            self.seen[key] = len(self.blob)
            self.blob += data
        return {"offset": self.seen[key], "bytes": a.nbytes, "dtype": dtype, "shape": list(a.shape)}

    def file(self, name: str, data: bytes) -> str:
        assert name not in self.files
        self.files[name] = data
        return name


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def pil_rgb(data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Palette images with Transparency expressed in bytes ..."
        im = Image.open(io.BytesIO(data))
        return np.array(im.convert("RGB"))


def pil_outcome(data: bytes) -> str:
    try:
        a = pil_rgb(data)
        return f"decodes ({a.shape[1]}x{a.shape[0]})"
    except Exception as e:  # noqa: BLE001 - recorded, whatever PIL raises
        return f"raises {type(e).__name__}: " + re.sub(r" <_io.BytesIO object at 0x[0-9a-f]+>", "", str(e))


def main():
    w = Writer()
    decode, errors, resize, resize_digest, preprocess = [], [], [], [], []

    def add_decode(name, data, pil_mode, note):
        im = Image.open(io.BytesIO(data))
        assert im.mode == pil_mode, (name, im.mode, pil_mode)  # the case covers what it says
        rgb = pil_rgb(data)
        decode.append({"file": w.file(name, data), "width": rgb.shape[1], "height": rgb.shape[0],
                       "pil_mode": pil_mode, "note": note, "rgb": w.array(rgb)})

    big = synth(37, 23, 1)
    small = synth(19, 13, 2)
    small4 = synth(19, 13, 3, channels=4)

    def pil_bytes(arr, mode, fmt, **kw):
        buf = io.BytesIO()
        Image.fromarray(arr, mode).save(buf, fmt, **kw)
        return buf.getvalue()

    # --- PIL-encoded
    add_decode("rgb_pil.png", pil_bytes(big, "RGB", "PNG"), "RGB", "Pillow's PNG encoder (adaptive filters)")
    add_decode("rgb_q90.jpg", pil_bytes(big, "RGB", "JPEG", quality=90), "RGB", "baseline, quality 90, 4:2:0")
    add_decode("rgb_q90_444.jpg", pil_bytes(big, "RGB", "JPEG", quality=90, subsampling=0), "RGB",
               "baseline, 4:4:4")
    add_decode("rgb_progressive_422.jpg",
               pil_bytes(big, "RGB", "JPEG", quality=75, progressive=True, subsampling=1), "RGB",
               "progressive, 4:2:2")
    add_decode("gray_q90.jpg", pil_bytes(big[:, :, 1], "L", "JPEG", quality=90), "L", "one-component JPEG")
    add_decode("cmyk.jpg", pil_bytes(small4, "CMYK", "JPEG", quality=90), "CMYK",
               "Adobe CMYK (stored inverted); PIL's cmyk2rgb")
    jpg = pil_bytes(big, "RGB", "JPEG", quality=90)
    assert jpg.endswith(b"\xff\xd9")
    no_eoi = jpg[:-2]
    pil_no_eoi = pil_outcome(no_eoi)

    # --- hand-written PNGs, one feature each
    alpha = np.linspace(0, 255, small.shape[0] * small.shape[1]).reshape(small.shape[:2], order="F")
    rgba = np.dstack([small, np.rint(alpha).astype(np.uint8)])
    add_decode("rgba8.png", make_png(rgba, 8, 6), "RGBA", "alpha 0..255, dropped (no compositing)")
    g = small[:, :, 0]
    add_decode("gray8_trns.png", make_png(g, 8, 0, trns=struct.pack(">H", int(g[0, 0]))), "L", "gray + tRNS")
    add_decode("gray_alpha8.png", make_png(np.dstack([g, small[:, :, 2]]), 8, 4), "LA", "gray + alpha")
    for bits in (1, 2, 4):
        add_decode(f"gray{bits}.png", make_png(g >> (8 - bits), bits, 0), "1" if bits == 1 else "L",
                   f"{bits}-bit gray, scaled to 0..255")
    rng = np.random.default_rng(4)
    pal = rng.integers(0, 256, (200, 3))
    idx = rng.integers(0, 256, small.shape[:2])  # indices 200..255 lie past the PLTE entries
    add_decode("palette8_short.png",
               make_png(idx, 8, 3, palette=pal, trns=bytes(rng.integers(0, 256, 50).tolist())), "P",
               "200-entry PLTE, indices up to 255, tRNS")
    add_decode("palette4.png", make_png(idx % 16, 4, 3, palette=pal[:11]), "P", "4-bit, 11 entries")
    add_decode("palette2_interlaced.png", make_png(idx % 4, 2, 3, palette=pal[:4], interlace=True), "P",
               "2-bit, Adam7")
    g16 = (small[:, :, 0].astype(np.uint16) * 257)
    g16[::2] = small[::2, :, 1] // 2 + 100  # half the rows <= 255: PIL keeps them, clips the rest to 255
    add_decode("gray16.png", make_png(g16, 16, 0), "I", "16-bit gray: PIL clips to 255")
    s16 = small.astype(np.uint16) * 257 + rng.integers(0, 257, small.shape).astype(np.uint16)
    add_decode("rgb16.png", make_png(s16, 16, 2), "RGB", "16-bit RGB: high byte")
    a16 = (np.rint(alpha).astype(np.uint16) * 255)
    add_decode("rgba16.png", make_png(np.dstack([s16, a16]), 16, 6), "RGBA", "16-bit RGBA: high byte")
    add_decode("gray_alpha16.png", make_png(np.dstack([s16[:, :, 0], a16]), 16, 4), "RGBA",
               "16-bit gray + alpha: high byte")
    add_decode("rgb_interlaced.png", make_png(small, 8, 2, interlace=True), "RGB", "Adam7")
    add_decode("rgb_interlaced_3x2.png", make_png(small[:2, :3], 8, 2, interlace=True), "RGB",
               "Adam7 with empty passes")
    add_decode("rgb_gamma_trns.png",
               make_png(small, 8, 2, gama=100000, trns=struct.pack(">HHH", *small[0, 0].tolist()),
                        text=b"Comment\x00gAMA 1.0: PIL ignores it"), "RGB", "gAMA 1.0, tRNS, tEXt: ignored")
    if pil_no_eoi.startswith("decodes"):
        add_decode("rgb_q90_no_eoi.jpg", no_eoi, "RGB", "EOI marker missing")

    # --- errors: each must raise a baleine::Error naming the file and saying why
    def add_error(name, data, expect, note, run_pil=True):
        pil = pil_outcome(data) if run_pil else "not run (it would allocate the 10000x10000 picture)"
        errors.append({"file": w.file(name, data), "expect": expect, "pil": pil, "note": note})

    add_error("empty.bin", b"", ["empty"], "no bytes")
    add_error("random.bin", b"\x00" + bytes(np.random.default_rng(5).integers(0, 256, 63, dtype=np.uint8)),
              ["unsupported image format", "expected PNG or JPEG"], "random bytes")
    add_error("tiny.gif", pil_bytes(small[:2, :2], "RGB", "GIF"), ["unsupported image format", "GIF"],
              "a GIF (PIL opens it; baseline decodes PNG and JPEG only)")
    png = make_png(small, 8, 2)
    add_error("truncated.png", png[:len(png) // 2], ["PNG"], "cut inside IDAT")
    i = png.index(b"IDAT")
    n = struct.unpack(">I", png[i - 4:i])[0]
    bad = bytearray(png[i + 4:i + 4 + n])
    bad[2:12] = b"\xff" * 10  # a broken DEFLATE stream, with a valid CRC
    add_error("corrupt.png", png[:i - 4] + chunk(b"IDAT", bytes(bad)) + png[i + 4 + n + 4:], ["corrupt PNG"],
              "damaged zlib data")
    add_error("truncated.jpg", jpg[:len(jpg) * 6 // 10], ["truncated JPEG"], "cut inside the scan")
    if not pil_no_eoi.startswith("decodes"):
        add_error("rgb_q90_no_eoi.jpg", no_eoi, ["truncated JPEG"], "EOI marker missing")
    ihdr_bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0))
    add_error("bomb_10000x10000.png", ihdr_bomb + chunk(b"IEND", b""),
              ["too large", "10000x10000", "16777216"], "header only: must fail before any pixel buffer")
    sof = jpg.index(b"\xff\xc0")
    bomb_jpg = jpg[:sof + 5] + struct.pack(">HH", 10000, 10000) + jpg[sof + 9:]
    add_error("bomb_10000x10000.jpg", bomb_jpg, ["too large", "10000x10000", "16777216"], "SOF0 patched",
              run_pil=False)
    add_error("zero_0x0.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
              + chunk(b"IEND", b""), ["PNG"], "zero width and height")
    add_error("zero_height.jpg", jpg[:sof + 5] + struct.pack(">HH", 0, 37) + jpg[sof + 9:], ["JPEG"],
              "SOF0 height 0 (DNL)")

    # --- resizes: source arrays, PIL's BICUBIC result
    def add_resize(src, ow, oh, note):
        out = np.array(Image.fromarray(src, "RGB").resize((ow, oh), Image.BICUBIC))
        resize.append({"width": src.shape[1], "height": src.shape[0], "src": w.array(src), "out_width": ow,
                       "out_height": oh, "note": note, "rgb": w.array(out)})

    s7 = synth(7, 5, 6)
    s33 = synth(33, 33, 7)
    s1 = synth(1, 1, 8)
    s53 = synth(5, 3, 9)
    wide = synth(120, 9, 10)
    add_resize(big, 16, 9, "down both")
    add_resize(big, 37, 11, "vertical only")
    add_resize(big, 50, 23, "horizontal only, up")
    add_resize(big, 1, 1, "down to one pixel")
    add_resize(big, 3, 40, "down x, up y")
    add_resize(big, 37, 23, "same size: a copy")
    add_resize(s7, 31, 22, "up both")
    add_resize(s33, 32, 31, "down by one")
    add_resize(s1, 5, 3, "one pixel up")
    add_resize(s53, 2, 7, "tiny, mixed")
    add_resize(wide, 7, 9, "down x17: wide kernel")
    add_resize(np.ascontiguousarray(wide.transpose(1, 0, 2)), 9, 5, "down y24")

    # Large outputs, stored as a digest only (FNV-1a 64 of the RGB bytes; too big for the fixture budget): with
    # ~10^5 values, near-ties of the fixed-point sums occur, so every rounding detail of the weights shows.
    def add_resize_digest(src, ow, oh, note):
        out = np.array(Image.fromarray(src, "RGB").resize((ow, oh), Image.BICUBIC))
        resize_digest.append({"width": src.shape[1], "height": src.shape[0], "src": w.array(src), "out_width": ow,
                              "out_height": oh, "note": note, "fnv1a64": f"{fnv1a64(out.tobytes()):016x}"})

    add_resize_digest(big, 401, 263, "up x10.8 / x11.4")
    add_resize_digest(s33, 250, 190, "up, non-integer ratios")
    add_resize_digest(wide, 97, 200, "down x, up y")

    # --- janus preprocessing
    incept = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    imagenet = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])

    def add_pre(src, image_size, min_size, mean_std, note):
        x, resized = janus_reference(Image.fromarray(src, "RGB"), image_size, min_size, *mean_std)
        preprocess.append({"width": src.shape[1], "height": src.shape[0], "src": w.array(src),
                           "image_size": image_size, "min_size": min_size, "mean": mean_std[0], "std": mean_std[1],
                           "resized": list(resized), "note": note,
                           "out": w.array(np.ascontiguousarray(np.transpose(x, (1, 2, 0))))})

    add_pre(big, 32, 14, incept, "wide")
    add_pre(synth(19, 40, 11), 32, 14, incept, "tall")
    add_pre(s33, 32, 14, incept, "square")
    add_pre(synth(40, 3, 12), 32, 14, incept, "very wide: min_size 14 wins over int(3/40*32) = 2")
    add_pre(synth(16, 10, 13), 16, 4, imagenet, "CLIP mean/std; the resize is the identity (16x10)")

    # --- write
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for name, data in w.files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    with open(os.path.join(OUT, "arrays.bin"), "wb") as f:
        f.write(bytes(w.blob))
    manifest = {"generator": "tests/reference/image_ref.py", "pillow": PIL.__version__, "numpy": np.__version__,
                "arrays": "arrays.bin", "jpeg_without_eoi_in_pil": pil_no_eoi,
                "decode": decode, "errors": errors, "resize": resize, "resize_digest": resize_digest,
                "preprocess": preprocess}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:  # one line per case
        f.write("{\n" + ",\n".join(
            f" {json.dumps(k)}: " + ("[\n" + ",\n".join("  " + json.dumps(e) for e in v) + "\n ]"
                                     if isinstance(v, list) else json.dumps(v))
            for k, v in manifest.items()) + "\n}\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    assert total < BUDGET, total
    print(f"{len(decode)} decodes, {len(errors)} errors, {len(resize)} + {len(resize_digest)} resizes, "
          f"{len(preprocess)} preprocessings; "
          f"{total} bytes in {OUT}")
    for e in errors:
        print(f"  {e['file']}: PIL {e['pil']}")


if __name__ == "__main__":
    main()
