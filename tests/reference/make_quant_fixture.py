#!/usr/bin/env python3
"""Writes tests/data/quant/<type>.bin: inputs and llama.cpp's own reference quantisation of them.

Runs llama.cpp's quantize_row_{q8_0,q4_0,q4_K,q6_K}_ref from a llama.cpp build's libggml-base.so (through
ctypes; nothing of llama.cpp is copied or committed), so test_quant checks that baleine's quantisers produce the
same bytes as llama.cpp's on awkward rows, and its dequantisers the same floats as dequantize_row_*. Usage:

    python3 tests/reference/make_quant_fixture.py /path/to/llama.cpp/build/bin/libggml-base.so

File layout (little-endian): u32 rows, u32 cols, f32 x[rows*cols], then the quantised rows
(rows * bytes_per_row), then llama.cpp's dequantisation of them, f32 y[rows*cols]. Deterministic: Python's random with fixed seeds.
"""
import ctypes
import math
import os
import random
import struct
import sys

TYPES = {  # name: (block elems, block bytes)
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_K": (256, 144),
    "q6_K": (256, 210),
}
COLS = 512


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def rows(seed):
    """Rows that exercise the corner cases of each quantiser's scale search."""
    rng = random.Random(seed)
    out = []
    for _ in range(6):  # gaussian of several scales
        s = 10 ** rng.uniform(-3, 1)
        out.append([rng.gauss(0, s) for _ in range(COLS)])
    out.append([rng.uniform(0.5, 2.0) for _ in range(COLS)])  # all positive (Q4_K min clamps to 0)
    out.append([-rng.uniform(0.5, 2.0) for _ in range(COLS)])  # all negative
    r = [rng.gauss(0, 0.02) for _ in range(COLS)]  # outliers, as in real weight matrices
    for i in range(0, COLS, 37):
        r[i] = rng.choice([-1, 1]) * rng.uniform(0.5, 3.0)
    out.append(r)
    out.append([0.0] * COLS)  # all zero
    out.append([0.25] * COLS)  # constant
    r = [0.0] * COLS  # one value per block, some sub-blocks empty
    for i in range(0, COLS, 50):
        r[i] = rng.gauss(0, 1)
    out.append(r)
    out.append([rng.gauss(0, 1e-20) for _ in range(COLS)])  # below GROUP_MAX_EPS in places
    out.append([rng.gauss(0, 3e3) for _ in range(COLS)])  # large (f16 scale range)
    out.append([float(rng.randint(-8, 7)) for _ in range(COLS)])  # exact grid values: ties
    out.append([math.copysign(rng.expovariate(10), rng.random() - 0.5) for _ in range(COLS)])  # heavy tails
    return [[f32(v) for v in r] for r in out]


def main():
    lib = ctypes.CDLL(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(here, "..", "data", "quant")
    os.makedirs(outdir, exist_ok=True)
    for seed, (name, (be, bb)) in enumerate(TYPES.items()):
        fn = getattr(lib, f"quantize_row_{name}_ref")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        data = rows(seed)
        row_bytes = COLS // be * bb
        blob = bytearray(struct.pack("<II", len(data), COLS))
        deq = getattr(lib, f"dequantize_row_{name}")
        deq.restype = None
        deq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        qs = bytearray()
        ys = bytearray()
        for r in data:
            x = (ctypes.c_float * COLS)(*r)
            q = (ctypes.c_uint8 * row_bytes)()
            fn(x, q, COLS)
            y = (ctypes.c_float * COLS)()
            deq(q, y, COLS)
            blob += struct.pack(f"<{COLS}f", *r)
            qs += bytes(q)
            ys += bytes(y)
        blob += qs + ys
        path = os.path.join(outdir, f"{name.lower()}.bin")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        print(f"{path}: {len(data)} rows x {COLS}, {len(blob)} bytes")


if __name__ == "__main__":
    main()
