// io/image.h — PNG and JPEG bytes to 8-bit RGB, the way DeepSeek's Janus code reads pictures
// (janus/utils/io.py load_pil_images: PIL.Image.open(f).convert("RGB")).
// defines: kDefaultMaxImagePixels, decode_image, read_image_file
//
// Summary: decode_image(bytes, what) / read_image_file(path) return exactly the RGB bytes of PIL's
// Image.open(f).convert("RGB") for PNG and JPEG (checked byte for byte against Pillow 9.4: tests/unit/test_image.cpp,
// fixtures by tests/reference/image_ref.py); other formats, broken data and pictures over max_pixels (checked from
// the header, before any pixel buffer) throw baleine::Error naming `what`.
//
// Details. PNG, every colour type and depth, Adam7: alpha DROPPED (convert("RGB") does not composite); tRNS, gAMA,
// sRGB, iCCP ignored (libpng's simplified API would apply gAMA and round 16-bit samples: the low-level API is used,
// with no colour transform); 16-bit RGB/RGBA/gray+alpha keep the high byte, 16-bit gray CLIPS to 0..255 (PIL's
// "I;16"/"I" -> RGB, so most 16-bit gray pictures turn white in Janus too); palette indices past the PLTE entries
// give PIL's default ramp (i, i, i). JPEG, through the libjpeg-turbo PIL uses, with its defaults (islow DCT, fancy
// upsampling): baseline, progressive, any subsampling, grayscale, Adobe CMYK (PIL's inverted "CMYK;I" + cmyk2rgb;
// YCCK takes the same libjpeg path, without a fixture); data ending before the last row, even a missing EOI only,
// is an error as in PIL. No EXIF rotation (neither PIL's open nor Janus applies it). Differences, on broken or
// exotic files only: a bad IDAT CRC or an unknown critical chunk is an error here (PIL may decode it); more than
// 1,000 progressive scans is refused (CPU bomb guard); GIF, WebP, BMP and PIL's other formats are errors.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "io/png.h"  // RgbImage

namespace baleine::io {

// 4096 x 4096: above Janus's 384 x 384 input by far, below a decompression bomb.
inline constexpr int64_t kDefaultMaxImagePixels = 16'777'216;

// Detects the format by its magic bytes (PNG "\x89PNG\r\n\x1a\n", JPEG FF D8 FF) and decodes to [h, w, 3] RGB. Throws
// baleine::Error naming `what` (a file name, "image_url 2") on empty, unknown, corrupt or truncated data, on zero
// dimensions and on width x height > max_pixels; the size check uses the header, before any pixel buffer exists.
RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& what,
                      int64_t max_pixels = kDefaultMaxImagePixels);

// decode_image on a file's bytes; a missing, unreadable or non-regular file is a baleine::Error naming the path.
RgbImage read_image_file(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);

}  // namespace baleine::io
