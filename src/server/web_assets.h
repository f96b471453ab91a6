// server/web_assets.h — the web chat's files (web/), compiled into the binary by cmake/embed_web.cmake.
// defines: WebAsset, find_web_asset
#pragma once
#include <cstddef>
#include <string>

namespace baleine::server {

struct WebAsset {
  const char* path;   // "/index.html"
  const unsigned char* data;
  size_t size;
  const char* mime;
};
const WebAsset* find_web_asset(const std::string& path);  // nullptr when absent

}  // namespace baleine::server
