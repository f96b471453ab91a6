// Fuzz target: the GGUF reader (header, metadata, tensor table) and every tensor's view into the mapping.
#include "core/check.h"
#include "fuzz_common.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = baleine::fuzz::scratch_file(data, size, ".gguf");
  try {
    auto f = baleine::io::GgufFile::open(path);
    for (const auto& [key, value] : f.metadata()) (void)value.summary();
    (void)f.get_string("general.architecture", "");
    (void)f.get_int("general.alignment", 32);
    for (const auto& t : f.tensors()) {
      if (!t.supported) continue;
      baleine::Tensor x = f.tensor(t.name);
      // Touch the first and last byte: a tensor view must lie inside the mapping.
      const uint8_t* p = f.data(t);
      volatile uint8_t sink = 0;
      if (t.nbytes) sink = uint8_t(p[0] ^ p[t.nbytes - 1]);
      (void)sink;
      (void)x;
    }
  } catch (const baleine::Error&) {
  }
  return 0;
}
