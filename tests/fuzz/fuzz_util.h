// Helpers shared by the fuzz targets (header only: each target is one
// translation unit linked against sparetime_fuzz_core).
//
// Invariants: every helper is deterministic (fixed keys, fixed nonces where
// the code allows), so a saved crasher replays the same way; nothing writes
// outside the per-process scratch directory under $TMPDIR (or /tmp).
#ifndef SPARETIME_TESTS_FUZZ_FUZZ_UTIL_H_
#define SPARETIME_TESTS_FUZZ_FUZZ_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "sparetime/base/fd.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/keys.h"

namespace sparetime::fuzz {

inline std::span<const std::byte> Bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view Text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A codec under a fixed master key (zstd level 3), as a repository has.
inline const Codec& FixedCodec() {
  static const Codec* codec = [] {
    SecretBuffer master(KeySet::kKeySize);
    for (size_t i = 0; i < master.size(); ++i) master.data()[i] = std::byte(0xA0 + i);
    return new Codec(KeySet::Derive(master), CodecOptions{});
  }();
  return *codec;
}

// Seals `plain` as a manifest blob with a nonce derived from nothing (zero),
// so a run is repeatable. Returns the id.
inline ChunkId SealManifest(std::span<const std::byte> plain, std::vector<std::byte>& sealed) {
  const Codec& codec = FixedCodec();
  ChunkId id = codec.Id(plain);
  std::byte nonce[24] = {};
  sealed = codec.SealWithNonce(BlobKind::kManifest, id, plain, std::span<const std::byte, 24>(nonce));
  return id;
}

// An anonymous in-memory file holding `bytes`.
inline Fd MemFile(std::span<const std::byte> bytes) {
  int fd = ::memfd_create("fuzz", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  return Fd(fd);
}

// A scratch directory for this process, made once.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/sparetime-fuzz-" +
                    std::to_string(::getpid());
    if (!MakeDirs(d, 0700).ok()) std::abort();
    return d;
  }();
  return dir;
}

// Splits `in` at every occurrence of `sep` (the fuzzer learns the
// separator from the seeds and its comparison hooks).
inline std::vector<std::span<const std::byte>> Split(std::span<const std::byte> in,
                                                     std::string_view sep) {
  std::vector<std::span<const std::byte>> parts;
  size_t start = 0;
  for (size_t i = 0; i + sep.size() <= in.size();) {
    if (std::memcmp(in.data() + i, sep.data(), sep.size()) == 0) {
      parts.push_back(in.subspan(start, i - start));
      i += sep.size();
      start = i;
    } else {
      ++i;
    }
  }
  parts.push_back(in.subspan(start));
  return parts;
}

}  // namespace sparetime::fuzz

#endif  // SPARETIME_TESTS_FUZZ_FUZZ_UTIL_H_
