// core/dtype.h — element types and scalar conversions between them.
// defines: DType, dtype_size, dtype_block_elems, dtype_block_bytes, dtype_is_quantized, dtype_nbytes, dtype_name, bf16_to_f32, f32_to_bf16, f16_to_f32, f32_to_f16, fp8_e4m3_to_f32
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace baleine {

// Q8_0, Q4_0, Q4_K and Q6_K are GGUF's block-quantised formats with llama.cpp's exact byte layout (ggml-common.h):
//   Q8_0: 32 values = f16 d + int8 qs[32]                       (34 bytes)
//   Q4_0: 32 values = f16 d + uint8 qs[16] (low nibbles: values 0..15, high nibbles: 16..31; value = d·(q−8))
//   Q4_K: 256 values = f16 d, f16 dmin, uint8 scales[12] (8 six-bit scale/min pairs), uint8 qs[128]  (144 bytes)
//   Q6_K: 256 values = uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d                          (210 bytes)
// Quantised tensors are always matrices stored row by row; a row holds cols / block_elems whole blocks.
enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, I32, I64, U8, Q8_0, Q4_0, Q4_K, Q6_K };

constexpr bool dtype_is_quantized(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q6_K;
}

// Values per block (1 for plain element types).
constexpr int64_t dtype_block_elems(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: return 32;
    case DType::Q4_K: case DType::Q6_K: return 256;
    default: return 1;
  }
}

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_K: case DType::Q6_K: return 0;  // no per-element size
  }
  return 0;
}

// Bytes per block (the element size for plain types).
constexpr size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::Q8_0: return 34;
    case DType::Q4_0: return 18;
    case DType::Q4_K: return 144;
    case DType::Q6_K: return 210;
    default: return dtype_size(t);
  }
}

// Storage bytes of `n` values (n must be a multiple of the block size for quantised types; callers check).
constexpr size_t dtype_nbytes(DType t, int64_t n) {
  return size_t(n / dtype_block_elems(t)) * dtype_block_bytes(t);
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F8_E4M3: return "f8_e4m3";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
    case DType::Q4_K: return "q4_k";
    case DType::Q6_K: return "q6_k";
  }
  return "?";
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f);

// OCP FP8 E4M3 ("e4m3fn"): bias 7, no infinities, 0x7f/0xff are NaN, max 448.
inline float fp8_e4m3_to_f32(uint8_t v) {
  uint32_t sign = (v >> 7) & 1u;
  uint32_t exp = (v >> 3) & 0xfu;
  uint32_t mant = v & 0x7u;
  float r;
  if (exp == 0xf && mant == 0x7) {
    r = __builtin_nanf("");
  } else if (exp == 0) {
    r = float(mant) / 8.0f / 64.0f;  // subnormal: mant/8 * 2^-6
  } else {
    r = (1.0f + float(mant) / 8.0f) * float(1u << exp) / 128.0f;  // 2^(exp-7)
  }
  return sign ? -r : r;
}

}  // namespace baleine
