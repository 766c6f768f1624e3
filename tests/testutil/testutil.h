// Shared test helpers: temporary directories, deterministic data, running
// commands, and loop devices for integration tests (root only).
//
// Everything here needs base only (sparetime_testutil_core), except
// TestChunkId, which needs crypto: it is declared only where crypto's headers
// are on the include path and defined in chunk_ids.cc
// (sparetime_testutil_crypto), so tests of base and scheduler include this
// header without seeing or linking crypto (tests/testutil/CMakeLists.txt).
#ifndef SPARETIME_TESTS_TESTUTIL_H_
#define SPARETIME_TESTS_TESTUTIL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#if __has_include("sparetime/crypto/chunk_id.h")
#include "sparetime/crypto/chunk_id.h"
#define SPARETIME_TESTUTIL_HAS_CHUNK_ID 1
#endif

namespace sparetime::testing {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes (xorshift) for test data.
std::vector<std::byte> RandomBytes(size_t n, uint64_t seed);

// Runs `body` in a child process as user nobody (uid/gid 65534) and returns
// its exit code (100: the switch to nobody failed; -1: it did not exit).
int RunAsNobody(const std::function<int()>& body);
#ifdef SPARETIME_TESTUTIL_HAS_CHUNK_ID
// A deterministic chunk id for test number n (distinct for distinct n).
// Defined in chunk_ids.cc (sparetime_testutil_crypto).
ChunkId TestChunkId(uint64_t n);
#endif

// Writes bytes to a file (creating/truncating it).
void WriteFileOrDie(const std::string& path, const std::vector<std::byte>& data);
std::vector<std::byte> ReadFileOrDie(const std::string& path);
// The pack files (*.pack) anywhere under `dir` (a repository's store), oldest
// first (a pack's file name is its sequence number).
std::vector<std::string> PackFiles(const std::string& dir);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};
// Runs `/bin/sh -c command`, capturing stdout and stderr.
CommandResult RunCommand(const std::string& command);
// Single-quotes a string for the shell.
std::string ShellQuote(const std::string& s);

bool IsRoot();

// A loop device over `backing_file`, detached on destruction. `read_only`
// attaches with `losetup -r` (not `blockdev --setro`, which would outlive the
// detach and leave the loop node read-only for whoever attaches it next).
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& backing_file, bool read_only = false);
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_TESTUTIL_H_
