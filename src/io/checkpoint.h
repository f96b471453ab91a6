// io/checkpoint.h — one reader over the weight formats of Hugging Face repositories: safetensors (preferred) or
// PyTorch .bin checkpoints (torch.save zip files, single or sharded with pytorch_model.bin.index.json).
// defines: CheckpointReader
//
// The methods are those of SafetensorsReader and TorchCheckpointReader, dispatched to the one that was opened.
// Errors come from the underlying reader (naming the file) or, for a directory holding neither format, from
// CheckpointReader::open listing the names it looked for.
#pragma once
#include <string>
#include <variant>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"

namespace baleine::io {

class CheckpointReader {
 public:
  enum class Format { Safetensors, PyTorch };

  // `path`: a directory (safetensors weights, i.e. model.safetensors.index.json or *.safetensors, win over
  // pytorch_model.bin.index.json / pytorch_model.bin when both are present), an index (*.bin.index.json is
  // PyTorch, other *.json safetensors), or a file (a zip archive or bare pickle is PyTorch, anything else is
  // read as safetensors).
  static CheckpointReader open(const std::string& path);

  Format format() const { return reader_.index() == 0 ? Format::Safetensors : Format::PyTorch; }
  bool contains(const std::string& name) const;
  // For PyTorch files this is the TorchTensorEntry (data is null for tensors that tensor() must copy).
  const SafetensorsEntry& entry(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& path() const;
  Tensor tensor(const std::string& name) const;                   // zero-copy where the reader can
  Tensor tensor_as(const std::string& name, DType out) const;     // converted copy, F32 or BF16

  // The underlying reader, or nullptr when the other format was opened.
  const SafetensorsReader* safetensors() const { return std::get_if<SafetensorsReader>(&reader_); }
  const TorchCheckpointReader* torch() const { return std::get_if<TorchCheckpointReader>(&reader_); }

 private:
  explicit CheckpointReader(SafetensorsReader r) : reader_(std::move(r)) {}
  explicit CheckpointReader(TorchCheckpointReader r) : reader_(std::move(r)) {}
  std::variant<SafetensorsReader, TorchCheckpointReader> reader_;
};

}  // namespace baleine::io
