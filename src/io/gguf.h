// io/gguf.h — GGUF (llama.cpp's model file, versions 2 and 3): memory-mapped reading with strict validation, and
// atomic writing.
// defines: GgufType, GgmlType, GgufValue, GgufTensorInfo, GgufFile, GgufWriter, ggml_type_of, dtype_of_ggml,
//          ggml_type_name
//
// Layout (little endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count × (string key, u32 value
// type, value); tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); padding to
// general.alignment (default 32); the data block. Strings are u64 length + bytes (no terminator); arrays are
// u32 element type + u64 count + elements (arrays of arrays allowed). ne[] is innermost first (ne[0] = columns),
// the reverse of PyTorch's order; tensor offsets are relative to the data block and multiples of the alignment.
//
// Every malformed input (truncation anywhere, counts larger than the file could hold, unknown value or tensor
// types, dimension products that overflow, data outside the file or overlapping, duplicate keys or names,
// misaligned offsets) throws baleine::Error naming the file and the field; nothing is read past the mapping.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace baleine::io {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10,
  I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor types (ggml.h numbering); only those baleine computes with are mapped to a DType.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30 };
const char* ggml_type_name(uint32_t t);  // any ggml number ("q5_k", "iq2_xxs", ... or "type 99")
bool dtype_of_ggml(uint32_t t, DType& out);
GgmlType ggml_type_of(DType t);  // throws for types GGUF cannot hold

// One metadata value. Scalars keep their declared type; arrays hold their elements (possibly arrays).
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;           // unsigned integer types and bool
  int64_t i = 0;            // signed integer types
  double f = 0;             // F32 / F64
  std::string s;            // String
  GgufType elem_type = GgufType::U8;  // Array
  std::vector<GgufValue> arr;         // Array

  static GgufValue of_u32(uint32_t v) { GgufValue x; x.type = GgufType::U32; x.u = v; return x; }
  static GgufValue of_i32(int32_t v) { GgufValue x; x.type = GgufType::I32; x.i = v; return x; }
  static GgufValue of_u64(uint64_t v) { GgufValue x; x.type = GgufType::U64; x.u = v; return x; }
  static GgufValue of_f32(float v) { GgufValue x; x.type = GgufType::F32; x.f = v; return x; }
  static GgufValue of_f64(double v) { GgufValue x; x.type = GgufType::F64; x.f = v; return x; }
  static GgufValue of_bool(bool v) { GgufValue x; x.type = GgufType::Bool; x.u = v; return x; }
  static GgufValue of_string(std::string v) { GgufValue x; x.type = GgufType::String; x.s = std::move(v); return x; }
  static GgufValue of_array(GgufType elem, std::vector<GgufValue> items);
  static GgufValue of_strings(const std::vector<std::string>& v);
  static GgufValue of_i32s(const std::vector<int32_t>& v);
  static GgufValue of_f32s(const std::vector<float>& v);

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::F32 || type == GgufType::F64; }
  // Checked conversions; `what` names the key in errors.
  int64_t as_int(const std::string& what) const;
  double as_double(const std::string& what) const;
  bool as_bool(const std::string& what) const;
  const std::string& as_string(const std::string& what) const;
  const std::vector<GgufValue>& as_array(const std::string& what) const;
  std::string summary() const;  // short printable form ("u32 7", "array<string>[129280]")
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;   // ggml order (innermost first)
  uint32_t ggml_type = 0;
  DType dtype = DType::F32;  // valid when `supported`
  bool supported = false;    // a type baleine can hold (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)
  uint64_t offset = 0;       // in the data block
  uint64_t nbytes = 0;
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }  // PyTorch order
};

class GgufFile {
 public:
  // Maps `path` and validates the whole header; tensor data is not read.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  bool has(const std::string& key) const { return kv_index_.count(key) != 0; }
  const GgufValue& get(const std::string& key) const;  // throws naming the key and the file
  const GgufValue* find(const std::string& key) const;  // nullptr if absent
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }

  // Typed getters with a fallback when absent (a present key of the wrong type is an error).
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensor_index_.count(name) != 0; }
  const GgufTensorInfo& info(const std::string& name) const;  // throws naming the tensor
  // Zero-copy tensor over the mapping in PyTorch shape order (the Tensor keeps the mapping alive). Read-only.
  Tensor tensor(const std::string& name) const;
  // Pointer to the tensor's bytes in the mapping (for slicing stacked tensors).
  const uint8_t* data(const GgufTensorInfo& t) const;
  std::shared_ptr<void> owner() const { return map_; }

 private:
  struct Mapping;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::shared_ptr<Mapping> map_;
  uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Collects metadata and tensors, then writes a version-3 file atomically (temp + fsync + rename). Tensors are
// given in PyTorch shape order and written with ne reversed; data are padded to the alignment.
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);  // replaces an earlier value, keeps the first position
  // `t` must be contiguous; quantised tensors need cols % block == 0.
  void add_tensor(const std::string& name, Tensor t);
  void write(const std::string& path) const;
  size_t tensor_count() const { return tensors_.size(); }

 private:
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
  std::map<std::string, size_t> names_;
};

}  // namespace baleine::io
