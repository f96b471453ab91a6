// io/torch_checkpoint.h — PyTorch checkpoints written by torch.save (the zip format, PyTorch >= 1.6):
// pytorch_model.bin, or shards pytorch_model-0000i-of-0000n.bin with pytorch_model.bin.index.json; read without
// Python and without executing anything the file names.
// defines: TorchTensorEntry, TorchCheckpointReader
//
// Format: a ZIP archive (records STORED, 64-byte aligned by torch, or DEFLATEd; ZIP64 for archives over 4 GB) whose
// single top-level directory <a>/ holds <a>/data.pkl (a pickle, protocol 2), <a>/data/<key> (raw little-endian
// storages), <a>/byteorder (optional, "little") and <a>/version. data.pkl is a dict (collections.OrderedDict or
// plain) from names to tensors rebuilt by torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]), where storage is the persistent id ('storage', torch.<T>Storage,
// key, location, numel). The pickle runs on a small VM that knows only the opcodes torch.save emits and only the
// globals collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter /
// _rebuild_parameter_with_state and torch.<T>Storage; anything else is an error. Values of the dict that are not
// tensors (ints, strings, nested dicts) are skipped. Every malformed input throws baleine::Error naming the file.
//
// Storage types: Float → F32, BFloat16 → BF16, Half → F16, Float8_e4m3fn → F8_E4M3, Long → I64, Int → I32,
// Byte and Bool → U8 (as stored, zero-copy); Double → F32, Short and Char → I32 (converted copies).
// Opening maps the files, parses the zip directory and data.pkl, and validates every tensor against its storage
// (offset + extent of size/stride inside the storage's numel, the record large enough for that numel); no tensor
// data is read. CRCs are checked for data.pkl and DEFLATEd records, not for STORED storages (that would read them).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace baleine::io {

// The SafetensorsEntry fields mean what they mean for safetensors: `dtype` and `shape` are those of tensor(),
// nbytes = numel · dtype_size(dtype), `file` the .bin file. `data` points at the tensor's bytes in the mapping
// when they lie there row-major in `dtype` (contiguous strides, STORED record, no conversion), else it is null
// (use tensor()).
struct TorchTensorEntry : SafetensorsEntry {
  std::vector<int64_t> stride;  // in elements, as saved (same length as shape)
  int64_t storage_offset = 0;   // in elements
  std::string storage;          // record inside the archive, e.g. "pytorch_model/data/3"
  std::string storage_type;     // "FloatStorage", "BFloat16Storage", ...
  bool contiguous = false;      // row-major strides (dimensions of size 1 ignored)
};

class TorchCheckpointReader {
 public:
  // `path`: a torch.save zip file (.bin/.pt/.pth), a pytorch_model.bin.index.json, or a directory holding
  // pytorch_model.bin.index.json or pytorch_model.bin.
  static TorchCheckpointReader open(const std::string& path);

  bool contains(const std::string& name) const;
  const TorchTensorEntry& entry(const std::string& name) const;  // throws naming the tensor and file(s)
  std::vector<std::string> names() const;                        // sorted
  // For an index: its "metadata" (non-strings as JSON text, e.g. total_size); empty for a single file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

  // Zero-copy over the read-only mapping when entry(name).data is set and aligned for the element type;
  // otherwise a private row-major copy (views with strides, converted types, DEFLATEd storages).
  // At most kMaxDims dimensions.
  Tensor tensor(const std::string& name) const;
  // Converted copy in `out` dtype (F32 or BF16) of a floating-point tensor; an F8_E4M3 tensor with a companion
  // "<name>_scale_inv" is dequantised by 128x128 blocks as SafetensorsReader::tensor_as does.
  Tensor tensor_as(const std::string& name, DType out) const;

  struct File;  // one mapped archive (implementation detail)

 private:
  std::string path_;
  std::vector<std::shared_ptr<File>> files_;
  std::map<std::string, TorchTensorEntry> entries_;
  std::map<std::string, std::shared_ptr<File>> owner_of_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace baleine::io
