// io/safetensors.h — Hugging Face safetensors: memory-mapped reading (single file or sharded with
// model.safetensors.index.json), atomic writing (single or sharded), FP8 e4m3 block dequantisation.
// defines: SafetensorsEntry, SafetensorsReader, safetensors_write, safetensors_write_sharded, dequantize_fp8_blocks
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data block; offsets are relative to the data block.
// Every malformed input (truncated file, bad JSON, offsets outside the file, overlapping ranges, shape/size
// mismatch, unknown dtype) throws baleine::Error naming the file and the tensor or field. Ranges that are legal
// but misaligned for their element type (other writers may produce them) are accepted; tensor() copies those.
// Opening maps the files and parses headers only: no tensor data is read until a tensor is used.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace baleine::io {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mapping
  size_t nbytes = 0;
  std::string file;            // which file (shard) holds it
};

class SafetensorsReader {
 public:
  // `path`: a .safetensors file, a model.safetensors.index.json, or a directory holding either
  // (model.safetensors or model.safetensors.index.json).
  static SafetensorsReader open(const std::string& path);

  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming the tensor and file(s)
  std::vector<std::string> names() const;                        // sorted
  // "__metadata__" of the file; for an index: its "metadata" (non-strings as JSON text, e.g. total_size),
  // then keys from the shards' "__metadata__" that the index does not set.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

  // Zero-copy tensor over the mapping (kept alive by the returned Tensor). The mapping is read-only: do not
  // write through it (use tensor_as for a private copy). At most kMaxDims dimensions.
  Tensor tensor(const std::string& name) const;
  // Converted copy in `out` dtype (F32 or BF16). An F8_E4M3 tensor is dequantised with its companion
  // "<name>_scale_inv" (e.g. "x.weight_scale_inv", f32 [ceil(rows/128), ceil(cols/128)]) when present.
  Tensor tensor_as(const std::string& name, DType out) const;

 private:
  struct File;
  std::string path_;
  std::vector<std::shared_ptr<File>> files_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::shared_ptr<File>> owner_of_;
  std::map<std::string, std::string> metadata_;
};

// Writes atomically: temp file "<path>.tmp.<pid>" in the same directory, fsync, rename, fsync of the directory;
// on failure the temp file is removed, an existing file is left intact, and the error names the OS cause.
// Layout as Hugging Face writes it: header keys sorted, header padded with spaces so the data block starts
// 8-aligned, data packed without gaps ordered by element size (largest first) then name, so every tensor is
// aligned to its element size.
void safetensors_write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes model-0000i-of-0000n.safetensors shards of at most max_shard_bytes (a tensor is never split) and
// model.safetensors.index.json into `directory` (created if needed). Returns the shard file names.
// Tensors are assigned greedily in the given order. The index holds {"metadata": {metadata..., "total_size": N},
// "weight_map": {...}}; each shard carries `metadata` as its "__metadata__". Stale shards of an earlier write
// with another shard count are not removed.
std::vector<std::string> safetensors_write_sharded(const std::string& directory,
                                                   const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                   size_t max_shard_bytes,
                                                   const std::map<std::string, std::string>& metadata = {});

// w: F8_E4M3 [rows, cols]; scale_inv: F32 [ceil(rows/block), ceil(cols/block)]; result[i, j] =
// fp8(w[i, j]) · scale_inv[i/block, j/block], in `out` dtype (F32 or BF16).
Tensor dequantize_fp8_blocks(const Tensor& w, const Tensor& scale_inv, DType out, int64_t block = 128);

}  // namespace baleine::io
