// io/atomic_file.cpp — temp file + fsync + rename + directory fsync.
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace baleine::io {

namespace fs = std::filesystem;

namespace {
std::string errno_str(int err) { return std::strerror(err); }
}  // namespace

void atomic_write(const char* fn, const std::string& path,
                  const std::function<void(const ByteSink&)>& produce) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(fn, fmt::format("{}: cannot create {}: {}", path, tmp, errno_str(errno)));
  auto abort_with = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    fd = -1;
    ::unlink(tmp.c_str());
    fail(fn, fmt::format("{}: {}: {}", path, what, errno_str(err)));
  };
  auto sink = [&](const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) abort_with(fmt::format("cannot write {}", tmp), w < 0 ? errno : EIO);
      p += w;
      n -= size_t(w);
    }
  };
  try {
    produce(sink);
  } catch (...) {
    if (fd >= 0) {  // not already cleaned up by abort_with
      ::close(fd);
      ::unlink(tmp.c_str());
    }
    throw;
  }
  if (::fsync(fd) != 0) abort_with(fmt::format("cannot fsync {}", tmp), errno);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) abort_with(fmt::format("cannot close {}", tmp), errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) abort_with(fmt::format("cannot rename {} over it", tmp), errno);
  std::string dir = fs::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int r = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (r != 0 && err != EINVAL && err != ENOTSUP)
      fail(fn, fmt::format("{}: cannot fsync directory {}: {}", path, dir, errno_str(err)));
  }
}

}  // namespace baleine::io
