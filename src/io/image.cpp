#include "io/image.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
// clang-format on
#include <png.h>
#include <sys/stat.h>

#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <vector>

#include "core/check.h"

namespace baleine::io {
namespace {

// Both libraries report errors by longjmp. Every call that may longjmp sits in a small function below that owns
// no C++ object (longjmp would skip its destructor) and returns false after an error; its caller, outside the
// jump, frees the library state through an RAII guard and throws. Buffers are allocated by the callers, after the
// header-only stage has passed the size check.

void check_size(const std::string& what, const char* format, int64_t w, int64_t h, int64_t max_pixels) {
  BALEINE_CHECK(w >= 1 && h >= 1, "{}: the {} header gives an empty {}x{} image", what, format, w, h);
  // Both sides come from 32-bit header fields: their product fits in 64 unsigned bits, not always in int64.
  BALEINE_CHECK(w <= max_pixels / h, "{}: the image is too large: {}x{} = {} pixels, more than the {} allowed", what, w,
                h, uint64_t(w) * uint64_t(h), max_pixels);
}

// ---------------------------------------------------------------------------------------------------------
// PNG through libpng's low-level API. Not the simplified API (png_image_*): it converts through gAMA/sRGB/cHRM
// gamma and rounds 16-bit samples to 8, whereas PIL hands the stored samples over untouched (and truncates 16-bit).

struct PngSource {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {};
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // what libpng only warns about, PIL accepts too

void png_on_read(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "truncated file");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, channels = 0;
  size_t rowbytes = 0;
};

bool png_stage_header(png_structp png, png_infop info, PngHeader* h) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  int interlace = 0;
  png_get_IHDR(png, info, &h->width, &h->height, &h->bit_depth, &h->color_type, &interlace, nullptr, nullptr);
  // PIL's "1", "L;2", "L;4" raw modes scale gray to 0..255 (v * 255 / (2^bits - 1)): libpng's expansion does the same.
  if (h->color_type == PNG_COLOR_TYPE_GRAY && h->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (h->color_type == PNG_COLOR_TYPE_PALETTE && h->bit_depth < 8) png_set_packing(png);  // one index per byte
  // Nothing else: no tRNS expansion, no gamma, no 16-bit stripping; decode_png maps the samples as PIL does.
  (void)png_set_interlace_handling(png);
  png_read_update_info(png, info);
  h->rowbytes = png_get_rowbytes(png, info);
  h->channels = png_get_channels(png, info);
  return true;
}

bool png_stage_pixels(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);  // all Adam7 passes when interlaced
  return true;
}

struct PngGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngGuard() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

RgbImage decode_png(std::span<const uint8_t> bytes, const std::string& what, int64_t max_pixels) {
  // IHDR must come first (bytes 8..33): the size guard runs on it before libpng reads any further chunk. Zero
  // sizes are left to libpng, which rejects them with its own message.
  if (bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    const auto be32 = [&](size_t at) {
      return int64_t(bytes[at]) << 24 | int64_t(bytes[at + 1]) << 16 | int64_t(bytes[at + 2]) << 8 | bytes[at + 3];
    };
    const int64_t w = be32(16), h = be32(20);
    if (w >= 1 && h >= 1) check_size(what, "PNG", w, h, max_pixels);
  }
  PngSource src;
  src.data = bytes.data();
  src.size = bytes.size();
  PngGuard g;
  g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  BALEINE_CHECK(g.png, "{}: out of memory for libpng", what);
  g.info = png_create_info_struct(g.png);
  BALEINE_CHECK(g.info, "{}: out of memory for libpng", what);
  png_set_read_fn(g.png, &src, png_on_read);
  // PIL verifies the CRC of every chunk it reads before the image data, ancillary ones included.
  png_set_crc_action(g.png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_set_benign_errors(g.png, 1);
  // PIL maps indices past the PLTE entries to its default palette; libpng would complain about them.
  png_set_check_for_invalid_index(g.png, 0);

  PngHeader h;
  if (!png_stage_header(g.png, g.info, &h)) BALEINE_FAIL("{}: corrupt PNG: {}", what, src.message);
  check_size(what, "PNG", h.width, h.height, max_pixels);
  const int bd = h.bit_depth, ct = h.color_type;
  const int want_channels = ct == PNG_COLOR_TYPE_RGB ? 3 : ct == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                            : ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
  const size_t bytes_per_sample = bd == 16 ? 2 : 1;
  BALEINE_CHECK(h.channels == want_channels && h.rowbytes == size_t(h.width) * want_channels * bytes_per_sample,
                "{}: unsupported PNG layout (colour type {}, {} bits)", what, ct, bd);

  const size_t w = h.width, rows = h.height;
  std::vector<uint8_t> raw(rows * h.rowbytes);
  std::vector<png_bytep> row_ptrs(rows);
  for (size_t y = 0; y < rows; ++y) row_ptrs[y] = raw.data() + y * h.rowbytes;
  if (!png_stage_pixels(g.png, row_ptrs.data())) BALEINE_FAIL("{}: corrupt PNG: {}", what, src.message);

  RgbImage out;
  out.width = int64_t(w);
  out.height = int64_t(rows);
  if (ct == PNG_COLOR_TYPE_RGB && bd == 8) {
    out.rgb = std::move(raw);
    return out;
  }
  png_colorp plte = nullptr;
  int n_plte = 0;
  if (ct == PNG_COLOR_TYPE_PALETTE) png_get_PLTE(g.png, g.info, &plte, &n_plte);
  out.rgb.resize(w * rows * 3);
  uint8_t* o = out.rgb.data();
  for (size_t y = 0; y < rows; ++y) {
    const uint8_t* r = row_ptrs[y];
    for (size_t x = 0; x < w; ++x, o += 3) {
      switch (ct) {
        case PNG_COLOR_TYPE_GRAY:
          // 16-bit gray opens as PIL mode "I;16" ("I" before Pillow 10): its RGB conversion clips to 255.
          o[0] = o[1] = o[2] = bd == 16 ? (r[2 * x] != 0 ? 255 : r[2 * x + 1]) : r[x];
          break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:  // 8-bit: PIL "LA"; 16-bit: "RGBA" from raw mode "LA;16B" (high bytes)
          o[0] = o[1] = o[2] = r[x * 2 * bytes_per_sample];
          break;
        case PNG_COLOR_TYPE_PALETTE: {
          // PIL's palette starts as the ramp (i, i, i) and the PLTE entries overwrite its first n_plte slots.
          const uint8_t i = r[x];
          if (i < n_plte) {
            o[0] = plte[i].red, o[1] = plte[i].green, o[2] = plte[i].blue;
          } else {
            o[0] = o[1] = o[2] = i;
          }
          break;
        }
        default: {  // RGB or RGBA: 16-bit keeps the high byte (PIL's "RGB;16B" / "RGBA;16B"); alpha is dropped
          const size_t step = size_t(want_channels) * bytes_per_sample;
          for (int c = 0; c < 3; ++c) o[c] = r[x * step + c * bytes_per_sample];
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// JPEG through libjpeg(-turbo) with the defaults PIL's JpegDecode.c leaves alone (islow DCT, fancy upsampling,
// block smoothing): the same library, so the same pixels.

constexpr int kMaxJpegScans = 1000;  // a progressive file may hold thousands of tiny scans: a CPU bomb

struct JpegError {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_on_message(j_common_ptr) {}  // PIL silences libjpeg's warnings ("corrupt data", "extraneous bytes")

// A memory source that remembers running dry. PIL's suspending source makes an image whose data ends before its
// last scanline an error ("image file is truncated") and accepts a missing EOI after it; ours inserts an EOI (as
// jpeg_mem_src does) so that libjpeg finishes cleanly, and decode_jpeg applies PIL's rule.
struct JpegSource {
  jpeg_source_mgr pub;
  bool ran_out;
};

void jpeg_src_init(j_decompress_ptr) {}
void jpeg_src_term(j_decompress_ptr) {}

boolean jpeg_src_fill(j_decompress_ptr cinfo) {
  static const JOCTET kEoi[2] = {0xFF, JPEG_EOI};
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  src->ran_out = true;
  src->pub.next_input_byte = kEoi;
  src->pub.bytes_in_buffer = 2;
  return TRUE;
}

void jpeg_src_skip(j_decompress_ptr cinfo, long n) {
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  if (n <= 0) return;
  while (size_t(n) > src->pub.bytes_in_buffer) {
    n -= long(src->pub.bytes_in_buffer);
    jpeg_src_fill(cinfo);
  }
  src->pub.next_input_byte += n;
  src->pub.bytes_in_buffer -= size_t(n);
}

struct JpegProgress {
  jpeg_progress_mgr pub;
  JpegError* err;
};

void jpeg_on_progress(j_common_ptr cinfo) {
  auto* p = reinterpret_cast<JpegProgress*>(cinfo->progress);
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    std::snprintf(p->err->message, sizeof p->err->message, "more than %d scans", kMaxJpegScans);
    std::longjmp(p->err->jump, 1);
  }
}

struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegError err;
  JpegSource src;
  JpegProgress progress;
  bool created;
};

bool jpeg_stage_header(JpegState* s) {
  if (setjmp(s->err.jump)) return false;
  jpeg_create_decompress(&s->cinfo);
  s->created = true;
  s->cinfo.src = &s->src.pub;
  s->cinfo.progress = &s->progress.pub;
  jpeg_read_header(&s->cinfo, TRUE);  // TRUE: a tables-only stream is an error
  return true;
}

// Decodes every scanline into `pixels` (rows of output_components bytes); stops early when the data runs out.
bool jpeg_stage_pixels(JpegState* s, J_COLOR_SPACE space, uint8_t* pixels, size_t expect_components,
                       bool* wrong_layout, bool* truncated) {
  if (setjmp(s->err.jump)) return false;
  s->cinfo.out_color_space = space;
  jpeg_start_decompress(&s->cinfo);
  if (size_t(s->cinfo.output_components) != expect_components ||
      s->cinfo.output_width != s->cinfo.image_width || s->cinfo.output_height != s->cinfo.image_height) {
    *wrong_layout = true;
    return true;
  }
  const size_t stride = size_t(s->cinfo.output_width) * expect_components;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW row = pixels + size_t(s->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&s->cinfo, &row, 1);
  }
  if (s->src.ran_out) {  // the data ended before the last scanline: PIL raises (LOAD_TRUNCATED_IMAGES is off)
    *truncated = true;
    return true;
  }
  jpeg_finish_decompress(&s->cinfo);  // reads up to EOI; a missing EOI is supplied by jpeg_src_fill
  return true;
}

struct JpegGuard {
  JpegState* s;
  ~JpegGuard() {
    if (s->created) jpeg_destroy_decompress(&s->cinfo);
  }
};

RgbImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& what, int64_t max_pixels) {
  JpegState s;
  std::memset(&s, 0, sizeof s);
  s.cinfo.err = jpeg_std_error(&s.err.pub);
  s.err.pub.error_exit = jpeg_on_error;
  s.err.pub.output_message = jpeg_on_message;
  s.src.pub.init_source = jpeg_src_init;
  s.src.pub.fill_input_buffer = jpeg_src_fill;
  s.src.pub.skip_input_data = jpeg_src_skip;
  s.src.pub.resync_to_restart = jpeg_resync_to_restart;
  s.src.pub.term_source = jpeg_src_term;
  s.src.pub.next_input_byte = bytes.data();
  s.src.pub.bytes_in_buffer = bytes.size();
  s.progress.pub.progress_monitor = jpeg_on_progress;
  s.progress.err = &s.err;
  JpegGuard guard{&s};

  if (!jpeg_stage_header(&s)) {
    if (s.src.ran_out) BALEINE_FAIL("{}: truncated JPEG (the data ends inside its header): {}", what, s.err.message);
    BALEINE_FAIL("{}: corrupt JPEG: {}", what, s.err.message);
  }
  BALEINE_CHECK(!s.src.ran_out, "{}: truncated JPEG (the data ends inside its header)", what);
  const int64_t w = s.cinfo.image_width, h = s.cinfo.image_height;
  check_size(what, "JPEG", w, h, max_pixels);
  const int nc = s.cinfo.num_components;
  // PIL's JpegImagePlugin opens 1 layer as "L", 3 as "RGB", 4 as "CMYK" and refuses the rest.
  BALEINE_CHECK(nc == 1 || nc == 3 || nc == 4, "{}: unsupported JPEG with {} components", what, nc);
  const bool cmyk = nc == 4;
  const size_t comps = cmyk ? 4 : 3;  // gray is expanded to RGB by libjpeg itself, exactly PIL's L -> RGB
  std::vector<uint8_t> pixels(size_t(w) * size_t(h) * comps);
  bool wrong_layout = false, truncated = false;
  if (!jpeg_stage_pixels(&s, cmyk ? JCS_CMYK : JCS_RGB, pixels.data(), comps, &wrong_layout, &truncated)) {
    if (s.src.ran_out) BALEINE_FAIL("{}: truncated JPEG: {}", what, s.err.message);
    BALEINE_FAIL("{}: corrupt JPEG: {}", what, s.err.message);
  }
  BALEINE_CHECK(!wrong_layout, "{}: unsupported JPEG colour layout", what);
  BALEINE_CHECK(!truncated, "{}: truncated JPEG (the data ends before the last of its {} rows)", what, h);

  RgbImage out;
  out.width = w;
  out.height = h;
  if (!cmyk) {
    out.rgb = std::move(pixels);
    return out;
  }
  // PIL decodes 4 components with raw mode "CMYK;I" (Adobe's inverted CMYK: c = 255 - stored) and converts with
  // Convert.c's cmyk2rgb: nk = 255 - k, r = clip(nk - MULDIV255(c, nk)), MULDIV255(a, b) = t = a*b + 128,
  // ((t >> 8) + t) >> 8.
  out.rgb.resize(size_t(w) * size_t(h) * 3);
  const auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (size_t i = 0, n = size_t(w) * size_t(h); i < n; ++i) {
    const uint8_t* p = &pixels[i * 4];
    const int nk = p[3];  // 255 - k with k = 255 - stored
    for (int c = 0; c < 3; ++c) {
      const int v = nk - muldiv255(255 - p[c], nk);
      out.rgb[i * 3 + size_t(c)] = uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
  return out;
}

// A name for the formats people send by mistake, so that the error says what the bytes are.
const char* sniff_other(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t at = 0) {
    const size_t n = std::strlen(magic);
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("GIF87a") || starts("GIF89a")) return " (this is a GIF)";
  if (starts("RIFF") && starts("WEBP", 8)) return " (this is a WebP)";
  if (starts("BM")) return " (this looks like a BMP)";
  if (starts("II*") || starts("MM")) return " (this looks like a TIFF)";
  if (starts("data:")) return " (this is a data: URL, not decoded bytes)";
  if (starts("<")) return " (this looks like HTML or XML)";
  return "";
}

}  // namespace

RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& what, int64_t max_pixels) {
  BALEINE_CHECK(max_pixels >= 1, "{}: max_pixels must be positive, not {}", what, max_pixels);
  BALEINE_CHECK(!bytes.empty(), "{}: empty image data", what);
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return decode_png(bytes, what, max_pixels);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    return decode_jpeg(bytes, what, max_pixels);
  BALEINE_FAIL("{}: unsupported image format{} (expected PNG or JPEG)", what, sniff_other(bytes));
}

RgbImage read_image_file(const std::string& path, int64_t max_pixels) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  BALEINE_CHECK(f, "{}: cannot open image file: {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes;
  struct stat st;
  const bool regular = ::fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
  bool ok = regular;
  if (regular) {
    bytes.resize(size_t(st.st_size));
    ok = std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  const int read_errno = errno;
  std::fclose(f);
  BALEINE_CHECK(regular, "{}: not a regular file", path);
  BALEINE_CHECK(ok, "{}: cannot read image file: {}", path, std::strerror(read_errno));
  return decode_image(bytes, path, max_pixels);
}

}  // namespace baleine::io
