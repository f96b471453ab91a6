// io/image_resize.h — Pillow's bicubic resize and Janus's image preprocessing, on 8-bit RGB.
// defines: resize_bicubic, janus_preprocess
//
// Summary: resize_bicubic(img, w, h) is bit-exact with Pillow's Image.resize((w, h), Image.BICUBIC) on RGB, which is
// what torchvision's F.resize(pil_image, size, BICUBIC, antialias=True) in Janus runs; janus_preprocess is DeepSeek's
// VLMImageProcessor (janus/models/image_processing_vlm.py: resize, expand2square, rescale, normalise) and gives its
// float32 values exactly (test tolerance 1e-6), channels-last [size, size, 3] instead of [3, size, size].
// Checked against Pillow 9.4 / numpy by tests/unit/test_image.cpp (fixtures: tests/reference/image_ref.py).
//
// Resample.c's algorithm, reimplemented: separable, horizontal pass then vertical, a pass only where the size
// changes; Keys kernel a = -0.5, support 2 * max(scale, 1); taps normalised to sum 1, rounded to 22-bit fixed point,
// accumulated from 0.5; 8-bit clipping between the passes.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "io/png.h"  // RgbImage

namespace baleine::io {

// out_w x out_h (each >= 1); the same size returns a copy, as PIL does.
RgbImage resize_bicubic(const RgbImage& in, int64_t out_w, int64_t out_h);

// [image_size, image_size, 3] float32, channels last: the longer side resized to image_size, the shorter to
// max(int(side / longer * image_size), min_size), centred on a square of int(mean * 255) (127 for 0.5), then
// (x / 255 - mean) / std per channel. Janus-Pro uses image_size 384, min_size 14, mean = std = 0.5. min_size must
// not exceed image_size (Janus would then return a larger square).
std::vector<float> janus_preprocess(const RgbImage& img, int64_t image_size = 384, int64_t min_size = 14,
                                    std::array<float, 3> mean = {0.5f, 0.5f, 0.5f},
                                    std::array<float, 3> std = {0.5f, 0.5f, 0.5f});

}  // namespace baleine::io
