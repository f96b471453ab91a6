#!/usr/bin/python3
"""Writes the PyTorch checkpoint fixtures of tests/data/torch_bin/ with torch.save (the zip format) and the values
baleine's TorchCheckpointReader must decode from them.

model.bin        an nn.Module state_dict (OrderedDict with _metadata, so BUILD) extended with: f32, bf16, f16, f64
                 (read as f32), i64, i32, i16 and i8 (read as i32), u8, bool (read as u8); views sharing one storage
                 (whole, storage_offset, strided, transposed), a permuted 3-D tensor, an expanded (stride 0) tensor,
                 a scalar, an empty tensor, a bf16 transpose, and a tied entry (the same tensor object twice)
mixed.pt         a plain dict with an nn.Parameter (torch._utils._rebuild_parameter) next to non-tensor values
                 (int, float, str, list, None, a nested dict holding a tensor): only "w" is a tensor entry
deflate.bin      model.bin's records recompressed with DEFLATE (python's zipfile); torch.load reads it too
sharded/         pytorch_model-00001-of-00002.bin, pytorch_model-00002-of-00002.bin, pytorch_model.bin.index.json
expected.safetensors
                 for each fixture F and tensor NAME, "F/NAME": the values, row-major, as F32 (floating-point
                 tensors; bf16/f16 widen exactly, f64 rounds to nearest f32) or I64 (integer and bool tensors);
                 __metadata__ "F/NAME" = "<baleine dtype> <contiguous|strided>" (what tensor() returns and whether
                 the saved strides are row-major)
Run: /usr/bin/python3 tests/reference/make_torch_bin_fixture.py (deterministic values; asserts the size budget)
"""
import collections
import json
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_ref import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "torch_bin")

BALEINE_DTYPE = {torch.float32: "F32", torch.float64: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                 torch.int64: "I64", torch.int32: "I32", torch.int16: "I32", torch.int8: "I32",
                 torch.uint8: "U8", torch.bool: "U8"}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(6, 4)
        self.proj = torch.nn.Linear(5, 3)
        self.norm = torch.nn.LayerNorm(5)
        self.register_buffer("position_ids", torch.arange(7).reshape(1, 7))


def model_state():
    torch.manual_seed(1234)
    m = Tiny()
    m.embed.to(torch.bfloat16)
    m.norm.to(torch.float16)
    with torch.no_grad():
        m.norm.weight.copy_(torch.randn(5))
        m.norm.bias.copy_(torch.tensor([0.0, -0.0, 6.0e-5, 65504.0, -1.5]))
    sd = m.state_dict()  # OrderedDict with _metadata: torch.save emits a BUILD
    assert hasattr(sd, "_metadata")
    base = torch.randn(20)
    sd["view.base"] = base
    sd["view.offset"] = base[5:11].view(2, 3)      # contiguous, storage_offset 5
    sd["view.strided"] = base[1::3]                 # stride 3, offset 1
    sd["view.transposed"] = base[:12].view(3, 4).t()
    sd["view.permuted3d"] = torch.randn(2, 3, 4).permute(2, 0, 1)
    sd["view.expanded"] = torch.randn(3, 1).expand(3, 4)
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 4, dtype=torch.bfloat16)
    sd["bf16.transposed"] = torch.randn(4, 3).to(torch.bfloat16).t()
    sd["tied.weight"] = sd["proj.weight"]           # the same tensor object: BINGET of the memoised tensor
    sd["mask"] = torch.tensor([True, False, False, True, True])
    sd["i32"] = torch.tensor([-7, 0, 2147483647, -2147483648], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 5, 32767], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, -1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8)
    sd["i64.big"] = torch.tensor([-(2 ** 40), 2 ** 62, 1], dtype=torch.int64)
    sd["f64"] = torch.tensor([1.0 / 3.0, -2.5, 1e-40, 1e300], dtype=torch.float64)
    return sd


def mixed_state():
    torch.manual_seed(99)
    return {"w": torch.nn.Parameter(torch.randn(2, 2)), "step": 7, "lr": 0.5, "name": "run",
            "flags": [True, None, 3], "nested": {"a": torch.ones(2)}}


def shard_states():
    torch.manual_seed(7)
    s1 = collections.OrderedDict([("a.weight", torch.randn(3, 2).to(torch.bfloat16)), ("a.bias", torch.randn(3))])
    s2 = collections.OrderedDict([("b.weight", torch.randn(2, 3).t())])
    return s1, s2


def expected_entries(prefix, state, expected, meta):
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach()
        key = f"{prefix}/{name}"
        meta[key] = f"{BALEINE_DTYPE[t.dtype]} {'contiguous' if t.is_contiguous() else 'strided'}"
        if t.is_floating_point():
            expected[key] = t.to(torch.float32).contiguous()
        else:
            expected[key] = t.to(torch.int64).contiguous()


def main():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    expected, meta = collections.OrderedDict(), {}

    sd = model_state()
    torch.save(sd, os.path.join(OUT, "model.bin"))
    expected_entries("model.bin", sd, expected, meta)

    mixed = mixed_state()
    torch.save(mixed, os.path.join(OUT, "mixed.pt"))
    expected_entries("mixed.pt", {"w": mixed["w"]}, expected, meta)

    # The same archive with every record DEFLATEd.
    with zipfile.ZipFile(os.path.join(OUT, "model.bin")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "deflate.bin"), "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))  # byte-identical reruns
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    back = torch.load(os.path.join(OUT, "deflate.bin"))
    assert list(back.keys()) == list(sd.keys())
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    expected_entries("deflate.bin", sd, expected, meta)

    s1, s2 = shard_states()
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    weight_map = {}
    for shard, name in zip((s1, s2), names):
        torch.save(shard, os.path.join(OUT, "sharded", name))
        weight_map.update({k: name for k in shard})
        expected_entries("sharded", shard, expected, meta)
    total = sum(t.numel() * t.element_size() for s in (s1, s2) for t in s.values())
    with open(os.path.join(OUT, "sharded", "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")

    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected,
                      metadata={"writer": "make_torch_bin_fixture.py", **meta})

    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    assert size < 100_000, size
    print(f"wrote {OUT}: {len(expected)} expected tensors, {size} bytes")


if __name__ == "__main__":
    main()
