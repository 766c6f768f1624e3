// FileTree (see file_tree.h).
#include "testutil/file_tree.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

// Two 64-bit FNV-1a variants: 128 bits of content digest, short enough for
// gtest's diff of two trees (a failing compare would print megabytes).
std::string Digest(const std::vector<std::byte>& data) {
  uint64_t a = 14695981039346656037ull, b = 1099511628211ull * 31;
  for (std::byte c : data) {
    a = (a ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    b = (b ^ static_cast<uint8_t>(c)) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
  }
  char out[40];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return out;
}

}  // namespace

// One line per entry under `root`, sorted: path, type, mode, owner, size,
// symlink target, xattrs and content (files). Equal trees, equal lists.
std::vector<std::string> FileTree(const std::string& root) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string p = e.path().string();
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    std::string line = p.substr(root.size()) + " mode=" + std::to_string(st.st_mode) +
                       " uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid);
    if (S_ISLNK(st.st_mode)) {
      line += " link=" + fs::read_symlink(e.path()).string();
    } else {
      char names[4096];
      ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
      std::vector<std::string> xattrs;
      for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
        char value[4096];
        ssize_t v = ::lgetxattr(p.c_str(), names + i, value, sizeof value);
        xattrs.push_back(std::string(names + i) + "=" + std::string(value, std::max<ssize_t>(v, 0)));
      }
      std::sort(xattrs.begin(), xattrs.end());
      for (const std::string& x : xattrs) line += " xattr:" + x;
    }
    if (S_ISREG(st.st_mode)) {
      line += " size=" + std::to_string(st.st_size);
      std::vector<std::byte> data = ReadFileOrDie(p);
      line += " data=" + Digest(data);
    }
    out.push_back(std::move(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sparetime::testing
