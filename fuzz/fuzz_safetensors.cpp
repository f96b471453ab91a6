// Fuzz target: the safetensors reader (header JSON, dtypes, shapes, offsets) and tensor conversion.
#include "core/check.h"
#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = baleine::fuzz::scratch_file(data, size, ".safetensors");
  try {
    auto r = baleine::io::SafetensorsReader::open(path);
    for (const auto& name : r.names()) {
      const auto& e = r.entry(name);
      volatile uint8_t sink = 0;
      if (e.nbytes) sink = uint8_t(static_cast<const uint8_t*>(e.data)[0] ^ static_cast<const uint8_t*>(e.data)[e.nbytes - 1]);
      (void)sink;
      try {
        if (e.nbytes < (1 << 20)) (void)r.tensor_as(name, baleine::DType::F32);
      } catch (const baleine::Error&) {
      }
    }
  } catch (const baleine::Error&) {
  }
  return 0;
}
