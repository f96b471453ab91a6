// data/source.h — finding input files and turning each into raw documents.
// defines: FileKind, file_kind, discover_files, read_file_bytes, split_text, IngestOptions, FileDocuments,
//          read_documents
//
// Formats (chosen by extension, after stripping a final ".gz", which is decompressed with zlib):
//   .txt, .md    one document per file; a file longer than split_chars bytes is cut at blank lines
//                (paragraph boundaries) into pieces of at most ~split_chars bytes.
//   .jsonl       one JSON object per line; the document is the string field `jsonl_field` ("text").
// Anything else found while walking a directory is counted as unsupported and skipped. Text files that
// contain a NUL byte or whose bytes are more than binary_invalid_ratio invalid UTF-8 are skipped as binary.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace baleine::data {

enum class FileKind { Text, Jsonl, Unsupported };
FileKind file_kind(const std::string& path);

// Regular files under every input (directories walked recursively, symlinks followed), sorted by path so
// the document order never depends on the filesystem. A missing input throws.
std::vector<std::string> discover_files(const std::vector<std::string>& inputs);

// Whole file, decompressed when the name ends in ".gz".
std::string read_file_bytes(const std::string& path);

// Cuts text into pieces of at most ~max_bytes at blank-line boundaries (then line boundaries, then
// UTF-8 character boundaries for a single over-long line). max_bytes <= 0 means never cut.
std::vector<std::string> split_text(std::string_view text, int64_t max_bytes);

struct IngestOptions {
  std::string jsonl_field = "text";
  int64_t split_chars = 100'000;
  double binary_invalid_ratio = 0.3;
};

struct FileDocuments {
  enum class Status { Ok, Binary, Unsupported, Error } status = Status::Ok;
  std::string error;
  int64_t bytes = 0;               // bytes read (decompressed)
  int64_t jsonl_bad_lines = 0;     // lines that are not a JSON object
  int64_t jsonl_missing_field = 0; // objects without a string field `jsonl_field`
  int64_t jsonl_repaired = 0;      // lines whose invalid UTF-8 bytes were replaced by U+FFFD before parsing
  std::vector<std::string> documents;  // raw (not yet normalised, maybe invalid UTF-8)
};

FileDocuments read_documents(const std::string& path, const IngestOptions& options);

}  // namespace baleine::data
