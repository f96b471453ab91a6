// Fuzz target: the PyTorch checkpoint reader (ZIP + ZIP64 directory, DEFLATE, the restricted pickle VM, storage
// bounds) and tensor gathers. An input starting with "PK" is the whole file; any other input is a data.pkl that
// the target wraps in a valid torch-style archive (correct CRC, storages "0".."3" of 64 bytes each), so mutations
// reach the pickle VM instead of stopping at the CRC check.
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "fuzz_common.h"
#include "io/torch_checkpoint.h"

namespace {

uint32_t crc32_of(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put(std::string& o, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) o += char(uint8_t(v >> (8 * i)));
}

// STORED records, no alignment padding, plain (not ZIP64) directory.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out, cd;
  for (const auto& [name, data] : records) {
    const uint64_t local = out.size();
    const uint32_t crc = crc32_of(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    put(out, 0x04034b50, 4);
    put(out, 20, 2);
    put(out, 0, 4);
    put(out, 0, 4);
    put(out, crc, 4);
    put(out, data.size(), 4);
    put(out, data.size(), 4);
    put(out, name.size(), 2);
    put(out, 0, 2);
    out += name;
    out += data;
    put(cd, 0x02014b50, 4);
    put(cd, 20, 2);
    put(cd, 20, 2);
    put(cd, 0, 4);
    put(cd, 0, 4);
    put(cd, crc, 4);
    put(cd, data.size(), 4);
    put(cd, data.size(), 4);
    put(cd, name.size(), 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 4);
    put(cd, local, 4);
    cd += name;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, records.size(), 2);
  put(out, records.size(), 2);
  put(out, cd.size(), 4);
  put(out, cd_offset, 4);
  put(out, 0, 2);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
    path = baleine::fuzz::scratch_file(data, size, ".bin");
  } else {
    std::vector<std::pair<std::string, std::string>> records{
        {"archive/data.pkl", std::string(reinterpret_cast<const char*>(data), size)}};
    for (int k = 0; k < 4; ++k) {
      std::string bytes(64, '\0');
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(uint8_t(i * 37 + size_t(k)));
      records.push_back({"archive/data/" + std::to_string(k), bytes});
    }
    records.push_back({"archive/version", "3\n"});
    const std::string zip = make_zip(records);
    path = baleine::fuzz::scratch_file(reinterpret_cast<const uint8_t*>(zip.data()), zip.size(), ".bin");
  }
  try {
    auto r = baleine::io::TorchCheckpointReader::open(path);
    for (const auto& name : r.names()) {
      const auto& e = r.entry(name);
      volatile uint8_t sink = 0;
      if (e.data != nullptr && e.nbytes)
        sink = uint8_t(static_cast<const uint8_t*>(e.data)[0] ^ static_cast<const uint8_t*>(e.data)[e.nbytes - 1]);
      (void)sink;
      if (e.nbytes >= (1 << 20)) continue;
      try {
        (void)r.tensor(name);
        (void)r.tensor_as(name, baleine::DType::F32);
      } catch (const baleine::Error&) {
      }
    }
  } catch (const baleine::Error&) {
  }
  return 0;
}
