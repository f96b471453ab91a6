#!/usr/bin/python3
"""Writes tests/data/safetensors/dtypes.safetensors and dtypes_expected.safetensors.

An independent reference for baleine's safetensors reader: the file format is written by hand (struct + json,
no `safetensors` package) and the expected decoded values come from torch (bf16/f16 -> f32 casts, f32 -> bf16
rounding) and from a closed-form fp8 e4m3 formula evaluated in float64 (this torch predates float8 dtypes).

dtypes.safetensors:
  f32            F32  [3, 5]     random normals and specials (inf, -0, subnormal, max)
  bf16           BF16 [4, 6]     random normals and specials
  f16            F16  [2, 9]     random normals and specials (subnormals, 65504, inf)
  fp8.all        F8_E4M3 [256]   every byte value (no companion scale: plain conversion)
  w.weight       F8_E4M3 [200, 136]   random fp8 bytes (NaN codes avoided)
  w.weight_scale_inv F32 [2, 2]  blockwise scale (128 x 128 blocks; the edge blocks are partial)
dtypes_expected.safetensors, for each tensor NAME above (except the scale):
  NAME           F32   what reading NAME as f32 must give (w.weight: fp8 value * scale of its block)
  NAME.bf16      BF16  what reading NAME as bf16 must give (torch's round-to-nearest-even of the f32 value)
Run: /usr/bin/python3 tests/reference/make_safetensors_fixture.py
"""
import json
import math
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "safetensors")


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw little-endian bytes). Packed in the given order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def fp8_e4m3_value(byte):
    """OCP e4m3fn: bias 7, subnormals, 0x7f / 0xff NaN, no infinities."""
    sign = -1.0 if byte & 0x80 else 1.0
    exp = (byte >> 3) & 0xF
    mant = byte & 0x7
    if exp == 0xF and mant == 0x7:
        return math.nan
    if exp == 0:
        return sign * math.ldexp(mant / 8.0, -6)
    return sign * math.ldexp(1.0 + mant / 8.0, exp - 7)


def f32_bytes(t):
    return t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def bf16_bytes(t):
    return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()


def main():
    g = torch.Generator().manual_seed(1234)
    inputs, expected = [], []

    f32 = torch.randn(3, 5, generator=g) * 3
    f32.view(-1)[:6] = torch.tensor([math.inf, -0.0, 1e-40, 3.4028234663852886e38, 1.0 + 2**-8, -(1.0 + 3 * 2**-8)])
    inputs.append(("f32", "F32", f32.shape, f32_bytes(f32)))
    expected.append(("f32", f32))

    bf16 = (torch.randn(4, 6, generator=g) * 10).to(torch.bfloat16)
    bf16.view(-1)[:4] = torch.tensor([-math.inf, -0.0, 1e-39, -3.3e38]).to(torch.bfloat16)
    inputs.append(("bf16", "BF16", bf16.shape, bf16_bytes(bf16)))
    expected.append(("bf16", bf16.to(torch.float32)))

    f16 = (torch.randn(2, 9, generator=g) * 100).to(torch.float16)
    f16.view(-1)[:5] = torch.tensor([6e-8, -6.1e-5, 65504.0, math.inf, -0.0]).to(torch.float16)
    f16_raw = f16.numpy().astype("<f2").tobytes()
    inputs.append(("f16", "F16", f16.shape, f16_raw))
    expected.append(("f16", f16.to(torch.float32)))

    all_bytes = np.arange(256, dtype=np.uint8)
    fp8_all = torch.from_numpy(np.array([fp8_e4m3_value(int(b)) for b in all_bytes], dtype=np.float64))
    inputs.append(("fp8.all", "F8_E4M3", [256], all_bytes.tobytes()))
    expected.append(("fp8.all", fp8_all.to(torch.float32)))

    rows, cols, block = 200, 136, 128
    rng = np.random.default_rng(99)
    w = rng.integers(0, 256, size=(rows, cols), dtype=np.uint8)
    w[(w & 0x7F) == 0x7F] = 0x3C  # avoid NaN codes so the expected values compare exactly
    lut = np.array([fp8_e4m3_value(b) for b in range(256)], dtype=np.float64).astype(np.float32)
    w_f32 = torch.from_numpy(lut[w])
    scale = torch.tensor([[0.5, 3.0], [1.0 / 3.0, 1e-3]], dtype=torch.float32)
    scale_full = scale.repeat_interleave(block, 0)[:rows].repeat_interleave(block, 1)[:, :cols]
    deq = w_f32 * scale_full  # float32 product, as the C++ code computes it
    inputs.append(("w.weight", "F8_E4M3", [rows, cols], w.tobytes()))
    inputs.append(("w.weight_scale_inv", "F32", list(scale.shape), f32_bytes(scale)))
    expected.append(("w.weight", deq))

    out = []
    for name, t in expected:
        out.append((name, "F32", list(t.shape), f32_bytes(t)))
        out.append((name + ".bf16", "BF16", list(t.shape), bf16_bytes(t.to(torch.float32))))
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "dtypes.safetensors"), inputs, {"writer": "make_safetensors_fixture.py"})
    write_safetensors(os.path.join(OUT, "dtypes_expected.safetensors"), out)


if __name__ == "__main__":
    main()
