#include "data/text.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <cstring>

#include "core/check.h"

namespace baleine::data {

int utf8_decode(std::string_view s, size_t i, char32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  size_t avail = s.size() - i;
  unsigned char c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len;
  char32_t v;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (avail < size_t(len)) {
    // Still check what is there so the caller can skip a maximal subpart; report invalid.
    return 0;
  }
  if (p[1] < lo || p[1] > hi) return 0;
  v = (v << 6) | (p[1] & 0x3F);
  for (int k = 2; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[k] & 0x3F);
  }
  *cp = v;
  return len;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

namespace {
// Length of the maximal ill-formed subpart starting at i (>= 1): the lead byte plus the continuation
// bytes that could still have been part of a valid sequence.
size_t invalid_span(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  int len = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 1;
  size_t n = 1;
  for (int k = 1; k < len && i + size_t(k) < s.size(); ++k) {
    auto b = static_cast<unsigned char>(s[i + size_t(k)]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (k == 1) {
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    if (b < lo || b > hi) break;
    ++n;
  }
  return n;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}
}  // namespace

size_t count_invalid_utf8(std::string_view s) {
  size_t bad = 0, i = 0;
  char32_t cp;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int n = utf8_decode(s, i, &cp);
    if (n > 0) {
      i += size_t(n);
    } else {
      size_t span = invalid_span(s, i);
      bad += span;
      i += span;
    }
  }
  return bad;
}

std::string repair_utf8(std::string_view s, size_t* n_invalid) {
  std::string out;
  out.reserve(s.size());
  size_t bad = 0, i = 0;
  char32_t cp;
  while (i < s.size()) {
    int n = utf8_decode(s, i, &cp);
    if (n > 0) {
      out.append(s.data() + i, size_t(n));
      i += size_t(n);
    } else {
      size_t span = invalid_span(s, i);
      bad += span;
      i += span;
      out += "\xEF\xBF\xBD";
    }
  }
  if (n_invalid) *n_invalid = bad;
  return out;
}

bool looks_binary(std::string_view bytes, double max_invalid_ratio) {
  if (bytes.empty()) return false;
  if (std::memchr(bytes.data(), 0, bytes.size()) != nullptr) return true;
  return double(count_invalid_utf8(bytes)) > max_invalid_ratio * double(bytes.size());
}

std::string nfc(std::string_view utf8) {
  if (is_ascii(utf8)) return std::string(utf8);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  BALEINE_CHECK(U_SUCCESS(err), "ICU NFC normaliser unavailable: {}", u_errorName(err));
  BALEINE_CHECK(utf8.size() < size_t(INT32_MAX / 2), "document of {} bytes is too large to normalise", utf8.size());
  // UTF-8 -> UTF-16 (at most one UTF-16 unit per byte).
  std::u16string u16(utf8.size(), u'\0');
  int32_t len16 = 0;
  u_strFromUTF8(reinterpret_cast<UChar*>(u16.data()), int32_t(u16.size()), &len16, utf8.data(), int32_t(utf8.size()),
                &err);
  BALEINE_CHECK(U_SUCCESS(err), "invalid UTF-8 given to NFC: {}", u_errorName(err));
  const auto* src = reinterpret_cast<const UChar*>(u16.data());
  int32_t prefix = unorm2_spanQuickCheckYes(norm, src, len16, &err);
  if (U_SUCCESS(err) && prefix == len16) return std::string(utf8);
  err = U_ZERO_ERROR;
  // NFC can grow text (up to 3x for some compositions-excluded characters); retry on overflow.
  std::u16string out(size_t(len16) + 16, u'\0');
  int32_t n = unorm2_normalize(norm, src, len16, reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    out.assign(size_t(n), u'\0');
    n = unorm2_normalize(norm, src, len16, reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  }
  BALEINE_CHECK(U_SUCCESS(err), "NFC normalisation failed: {}", u_errorName(err));
  std::string result(size_t(n) * 3, '\0');
  int32_t len8 = 0;
  u_strToUTF8(result.data(), int32_t(result.size()), &len8, reinterpret_cast<const UChar*>(out.data()), n, &err);
  BALEINE_CHECK(U_SUCCESS(err), "UTF-16 -> UTF-8 failed: {}", u_errorName(err));
  result.resize(size_t(len8));
  return result;
}

std::string normalize_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  int blank_run = 0;          // consecutive blank lines seen (not yet written)
  bool any_line = false;      // a non-blank line has been written
  std::string line;
  auto flush_line = [&]() {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty()) {
      ++blank_run;
    } else {
      if (any_line) {
        out += '\n';
        for (int k = 0; k < std::min(blank_run, 2); ++k) out += '\n';
      }
      out += line;
      any_line = true;
      blank_run = 0;
    }
    line.clear();
  };
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      flush_line();
    } else if (c == '\n' || c == '\f' || c == '\v') {
      flush_line();
    } else if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) {
      continue;
    } else {
      line += c;
    }
  }
  flush_line();
  return out;
}

std::string normalize_text(std::string_view s) { return nfc(normalize_whitespace(s)); }

uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

uint64_t hash64(std::string_view s, uint64_t seed) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = mix64(seed ^ (uint64_t(s.size()) * kMul));
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ mix64(w + kMul)) * 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ mix64(tail ^ 0x5851F42D4C957F2DULL)) * 0xff51afd7ed558ccdULL;
  return mix64(h);
}

bool is_alpha(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return u_isalpha(UChar32(cp));
}

bool is_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v';
  return u_isUWhiteSpace(UChar32(cp));
}

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0, n = s.size();
  while (i < n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    size_t j = i;
    while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
    if (j > i) words.push_back(s.substr(i, j - i));
    i = j;
  }
  return words;
}

}  // namespace baleine::data
