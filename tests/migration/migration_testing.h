// Helpers for the migration tests: probe programs started with stdio on
// /dev/null (so they hold no terminal), bounded waits on their output files,
// and children that are always killed and reaped at teardown.
#ifndef SPARETIME_TESTS_MIGRATION_TESTING_H_
#define SPARETIME_TESTS_MIGRATION_TESTING_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/image_store.h"

extern char** environ;

namespace sparetime::migration::testing {

#ifdef MIGRATION_PROGRAMS_DIR  // the tests of tests/migration
inline std::string ProgramPath(const std::string& name) { return std::string(MIGRATION_PROGRAMS_DIR) + "/" + name; }
#endif

// Polls `done` every 2 ms until it holds or `timeout` passes.
inline bool WaitUntil(const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

inline bool HasLineStartingWith(const std::string& path, const std::string& prefix) {
  for (const auto& l : ReadLines(path))
    if (l.rfind(prefix, 0) == 0) return true;
  return false;
}

// /proc/PID/stat state letter, or '?' when the process is gone.
inline char ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(in, s);
  size_t close = s.rfind(')');
  return close == std::string::npos || close + 2 >= s.size() ? '?' : s[close + 2];
}

// A child process of the test, killed and reaped (bounded) on destruction.
// The PID stays valid across checkpoint + restore: the restored process is
// again a child of the test process.
class Child {
 public:
  // stdin and stderr on /dev/null; stdout too, or on the file `stdout_path`.
  Child(const std::string& program, const std::vector<std::string>& args, const std::string& stdout_path = "") {
    std::vector<std::string> all{program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd : {0, 1, 2}) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
    if (!stdout_path.empty())
      posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);  // nothing inherited from the test runner
    if (posix_spawn(&pid_, program.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ <= 0) return;
    int st;
    if (::waitpid(pid_, &st, WNOHANG) != 0) return;  // already reaped, or not our child
    ::kill(pid_, SIGKILL);
    WaitExit(std::chrono::milliseconds(5000));
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // The exit wait status, or -1 when it did not exit in time.
  int WaitExit(std::chrono::milliseconds timeout) {
    int status = -1;
    WaitUntil([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
    return status;
  }

 private:
  pid_t pid_ = -1;
};

// A checkpointed image the way the CLI moves it: sealed into chunks of a pack
// store under `dir`, written to an image file, read back and loaded.
inline Result<ProcessImage> ThroughImageFile(const ProcessImage& image, const std::string& dir) {
  ST_ASSIGN_OR_RETURN(MigrationKey key, MigrationKey::LoadOrCreate(dir + "/key"));
  ST_ASSIGN_OR_RETURN(std::unique_ptr<PackStore> store, PackStore::Create(dir + "/store"));
  ST_ASSIGN_OR_RETURN(StoredImage stored, StoreImage(image, key, *store));
  ST_RETURN_IF_ERROR(WriteImageFile(stored, dir + "/image"));
  ST_ASSIGN_OR_RETURN(StoredImage file, ReadImageFile(dir + "/image"));
  return LoadImage(file, key, *store);
}

}  // namespace sparetime::migration::testing

#endif  // SPARETIME_TESTS_MIGRATION_TESTING_H_
