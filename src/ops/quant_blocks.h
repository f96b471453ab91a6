// ops/quant_blocks.h — the byte layouts of GGUF's block formats (see core/dtype.h) as C structs, plus the
// activation blocks the integer dot-product kernels quantise x into.
// defines: BlockQ8_0, BlockQ4_0, BlockQ4_K, BlockQ6_K, BlockQ8_K, kQK, q4k_scale_min
//
// Internal to baleine_ops (tests may include it). Plain structs and `static inline` helpers only, so the
// ISA-flagged kernel files can include it (see cpu/kernels.h for why nothing here may have vague linkage).
// Field order and sizes are exactly llama.cpp's block_q8_0 / block_q4_0 / block_q4_K / block_q6_K.
#pragma once
#include <cstdint>

namespace baleine::ops {

constexpr int kQK = 256;  // values per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;     // f16 scale
  int8_t qs[32];  // value i = d · qs[i]
};
struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // value j = d · ((qs[j] & 15) − 8), value j+16 = d · ((qs[j] >> 4) − 8)
};
// 8 sub-blocks of 32 values; sub-block j has a 6-bit scale sc_j and 6-bit min m_j (packed in scales[12], see
// q4k_scale_min); value = d·sc_j·q − dmin·m_j with q the 4-bit code. qs holds 4 chunks of 64 values: byte l of
// chunk c has value 64c+l in its low nibble and 64c+32+l in its high nibble.
struct BlockQ4_K {
  uint16_t d;          // f16 super-block scale of the sub-block scales
  uint16_t dmin;       // f16 super-block scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[128];
};
// 16 sub-blocks of 16 values, each with an int8 scale; value = d·scales[j]·(q − 32), q 6 bits: the low 4 in
// ql, the high 2 in qh. Per 128-value half h: ql[64h + l] low nibble = value 128h+l, high nibble = 128h+64+l;
// ql[64h + 32 + l] low = 128h+32+l, high = 128h+96+l; qh[32h + l] bits 0-1, 2-3, 4-5, 6-7 = values
// 128h+l, +32, +64, +96.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // f16
};
// Activation block for the K-quant dot products (llama.cpp's block_q8_K): f32 scale, 256 int8 values and the
// sums of each 16 values (to apply Q4_K mins without touching the values again).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK];
  int16_t bsums[kQK / 16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "ggml block sizes");
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210, "ggml block sizes");

// Sub-block j (0..7) scale and min of a Q4_K block: j < 4 in the low 6 bits of bytes j and j+4; j >= 4 split
// into a low nibble in byte j+4 and the top 2 bits of bytes j−4 (scale) and j (min).
static inline void q4k_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

}  // namespace baleine::ops
