// io/atomic_file.h — crash-safe file writing shared by every writer (safetensors, GGUF, JSON sidecars).
// defines: ByteSink, atomic_write
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace baleine::io {

using ByteSink = std::function<void(const void*, size_t)>;

// Writes `path` atomically: `<path>.tmp.<pid>` in the same directory, fsync, rename, fsync of the directory.
// `produce` is called with a sink that appends bytes. On any failure the temp file is removed, the previous
// file (if any) is left intact, and an Error naming `path` and the OS error is thrown (prefixed with `fn`).
void atomic_write(const char* fn, const std::string& path, const std::function<void(const ByteSink&)>& produce);

}  // namespace baleine::io
