#include "data/source.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "data/text.h"

namespace fs = std::filesystem;

namespace baleine::data {

namespace {
bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}
}  // namespace

FileKind file_kind(const std::string& path) {
  std::string name = lower(fs::path(path).filename().string());
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  if (ends_with(name, ".txt") || ends_with(name, ".md")) return FileKind::Text;
  if (ends_with(name, ".jsonl")) return FileKind::Jsonl;
  return FileKind::Unsupported;
}

std::vector<std::string> discover_files(const std::vector<std::string>& inputs) {
  BALEINE_CHECK(!inputs.empty(), "no input given (--input DIRS/FILES...)");
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    auto st = fs::status(in, ec);
    BALEINE_CHECK(!ec && fs::exists(st), "input '{}' does not exist", in);
    if (fs::is_directory(st)) {
      auto opts = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
      for (auto it = fs::recursive_directory_iterator(in, opts, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file(ec)) files.push_back(it->path().string());
      }
      BALEINE_CHECK(!ec, "cannot walk '{}': {}", in, ec.message());
    } else {
      files.push_back(in);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

std::string read_file_bytes(const std::string& path) {
  std::string out;
  if (ends_with(lower(path), ".gz")) {
    gzFile gz = gzopen(path.c_str(), "rb");
    BALEINE_CHECK(gz != nullptr, "cannot open '{}'", path);
    std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(gz, gzclose);
    gzbuffer(gz, 1 << 17);
    char buf[1 << 16];
    for (;;) {
      int n = gzread(gz, buf, sizeof(buf));
      if (n < 0) {
        int errnum = 0;
        const char* msg = gzerror(gz, &errnum);
        BALEINE_FAIL("cannot decompress '{}': {}", path, msg ? msg : "zlib error");
      }
      if (n == 0) break;
      out.append(buf, size_t(n));
    }
    return out;
  }
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  BALEINE_CHECK(f != nullptr, "cannot open '{}'", path);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) out.append(buf, n);
  BALEINE_CHECK(!std::ferror(f.get()), "cannot read '{}'", path);
  return out;
}

namespace {
bool blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

// Largest cut <= limit at a UTF-8 character boundary.
size_t utf8_cut(std::string_view s, size_t limit) {
  size_t cut = std::min(limit, s.size());
  while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return cut == 0 ? std::min(limit, s.size()) : cut;
}
}  // namespace

std::vector<std::string> split_text(std::string_view text, int64_t max_bytes) {
  std::vector<std::string> out;
  if (max_bytes <= 0 || int64_t(text.size()) <= max_bytes) {
    out.emplace_back(text);
    return out;
  }
  const size_t limit = size_t(max_bytes);
  std::string cur;
  auto emit = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  // Paragraphs: maximal runs of lines up to and including the blank lines that follow them.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos;
    bool seen_text = false;
    while (end < text.size()) {
      size_t nl = text.find('\n', end);
      size_t line_end = nl == std::string_view::npos ? text.size() : nl + 1;
      bool is_blank = blank(text.substr(end, line_end - end));
      if (seen_text && is_blank) {
        // swallow the blank lines that end the paragraph
        end = line_end;
        while (end < text.size()) {
          size_t nl2 = text.find('\n', end);
          size_t le2 = nl2 == std::string_view::npos ? text.size() : nl2 + 1;
          if (!blank(text.substr(end, le2 - end))) break;
          end = le2;
        }
        break;
      }
      seen_text |= !is_blank;
      end = line_end;
    }
    std::string_view para = text.substr(pos, end - pos);
    pos = end;
    if (cur.size() + para.size() <= limit) {
      cur.append(para);
      continue;
    }
    emit();
    // An over-long paragraph: cut at line boundaries, then hard at character boundaries.
    while (para.size() > limit) {
      size_t cut = para.rfind('\n', limit - 1);
      cut = (cut == std::string_view::npos || cut == 0) ? utf8_cut(para, limit) : cut + 1;
      out.emplace_back(para.substr(0, cut));
      para.remove_prefix(cut);
    }
    cur.assign(para);
  }
  emit();
  return out;
}

FileDocuments read_documents(const std::string& path, const IngestOptions& options) {
  FileDocuments r;
  FileKind kind = file_kind(path);
  if (kind == FileKind::Unsupported) {
    r.status = FileDocuments::Status::Unsupported;
    return r;
  }
  std::string bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (const std::exception& e) {
    r.status = FileDocuments::Status::Error;
    r.error = e.what();
    return r;
  }
  r.bytes = int64_t(bytes.size());
  if (kind == FileKind::Text) {
    if (looks_binary(bytes, options.binary_invalid_ratio)) {
      r.status = FileDocuments::Status::Binary;
      return r;
    }
    r.documents = split_text(bytes, options.split_chars);
    return r;
  }
  // JSONL: a NUL byte means this is not a text file at all.
  if (bytes.find('\0') != std::string::npos) {
    r.status = FileDocuments::Status::Binary;
    return r;
  }
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string::npos) nl = bytes.size();
    std::string_view line(bytes.data() + pos, nl - pos);
    pos = nl + 1;
    if (blank(line)) continue;
    std::string repaired;
    if (count_invalid_utf8(line) > 0) {
      // Repair so one bad byte does not lose the whole line; the document is judged again later.
      repaired = repair_utf8(line);
      ++r.jsonl_repaired;
      line = repaired;
    }
    nlohmann::json obj = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!obj.is_object()) {
      ++r.jsonl_bad_lines;
      continue;
    }
    auto it = obj.find(options.jsonl_field);
    if (it == obj.end() || !it->is_string()) {
      ++r.jsonl_missing_field;
      continue;
    }
    for (auto& piece : split_text(it->get_ref<const std::string&>(), options.split_chars))
      r.documents.push_back(std::move(piece));
  }
  return r;
}

}  // namespace baleine::data
