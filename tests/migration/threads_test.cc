// Multi-threaded processes: every thread checkpointed mid-run and restored
// with its TID, and the job finishing with exactly the output of an
// uninterrupted run — the probe mig_threads (TLS, per-thread masks, names,
// altstack, robust list, clear_child_tid joins), Debian's python3 with four
// hashing threads, and `xz -T2`. Needs root (clone3 set_tid, ptrace).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "migration_testing.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/checkpoint.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/migration/restore.h"
#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

using namespace std::chrono_literals;
using sparetime::testing::TempDir;
using testing::Child;
using testing::HasLineStartingWith;
using testing::ProgramPath;
using testing::ReadLines;
using testing::WaitUntil;

class ThreadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sparetime::testing::IsRoot()) GTEST_SKIP() << "needs root (clone3 set_tid, ptrace)";
  }

  // Checkpoint (the source is killed), then through chunks and the image
  // file as the CLI does, then restore with the same PID.
  void MoveThroughImageFile(pid_t pid, size_t expected_threads) {
    auto image = Checkpoint(pid);
    ASSERT_TRUE(image.ok()) << image.error().ToString();
    EXPECT_EQ(image->threads.size() + 1, expected_threads);
    EXPECT_EQ(testing::ProcState(pid), '?') << "the source must be gone after a checkpoint";
    auto loaded = testing::ThroughImageFile(*image, tmp_.path());
    ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
    ASSERT_EQ(loaded->threads.size(), image->threads.size());
    for (size_t i = 0; i < image->threads.size(); ++i) {
      EXPECT_EQ(loaded->threads[i].tid, image->threads[i].tid);
      EXPECT_EQ(loaded->threads[i].comm, image->threads[i].comm);
      EXPECT_EQ(loaded->threads[i].regs, image->threads[i].regs);
    }
    auto restored = Restore(*loaded);
    ASSERT_TRUE(restored.ok()) << restored.error().ToString();
    EXPECT_EQ(*restored, pid);
    std::vector<std::string> tids;
    for (const ThreadImage& t : image->threads) tids.push_back(std::to_string(t.tid));
    for (const std::string& tid : tids) {
      auto comm = ReadFileToString("/proc/" + std::to_string(pid) + "/task/" + tid + "/comm");
      EXPECT_TRUE(comm.ok()) << "thread " << tid << " was not restored with its TID";
    }
  }

  static int RunToEnd(const std::string& program, const std::vector<std::string>& args,
                      const std::string& stdout_path = "") {
    Child c(program, args, stdout_path);
    return c.WaitExit(60000ms);
  }

  static int ThreadCount(pid_t pid) {
    for (const auto& l : ReadLines("/proc/" + std::to_string(pid) + "/status"))
      if (l.rfind("Threads:", 0) == 0) return std::stoi(l.substr(8));
    return 0;
  }

  TempDir tmp_;
};

constexpr const char* kIterations = "40000000";

TEST_F(ThreadsTest, FourThreadsFinishWithTheResultOfAnUninterruptedRun) {
  const std::string ref = tmp_ / "ref.log", out = tmp_ / "moved.log";
  ASSERT_EQ(RunToEnd(ProgramPath("mig_threads"), {ref, kIterations}), 0);
  auto expected = ReadLines(ref);
  ASSERT_EQ(expected.size(), 6u);
  for (int i = 0; i < 4; ++i)
    EXPECT_NE(expected[static_cast<size_t>(i) + 1].find("name=worker-" + std::to_string(i) +
                                                         " tid-same=1 mask-ok=1 altstack-ok=1"),
              std::string::npos)
        << expected[static_cast<size_t>(i) + 1];
  EXPECT_NE(expected[5].find("robust=EOWNERDEAD"), std::string::npos) << expected[5];

  Child child(ProgramPath("mig_threads"), {out, kIterations});
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "ready"); }));
  std::this_thread::sleep_for(50ms);
  ASSERT_EQ(ReadLines(out).size(), 1u) << "finished before the checkpoint: raise kIterations";
  MoveThroughImageFile(child.pid(), 5);
  int status = child.WaitExit(60000ms);
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ReadLines(out), expected);
}

// A failed dump resumes every thread where it was: the run still ends with
// the uninterrupted result.
TEST_F(ThreadsTest, AFailedDumpResumesEveryThread) {
  const std::string ref = tmp_ / "ref.log", out = tmp_ / "out.log";
  ASSERT_EQ(RunToEnd(ProgramPath("mig_threads"), {ref, kIterations}), 0);
  Child child(ProgramPath("mig_threads"), {out, kIterations});
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "ready"); }));
  for (const char* step : {"memory", "injected", "signals", "done"}) {
    CheckpointOptions options;
    options.step_hook = [&](std::string_view s) { return s == step ? IoError("injected failure") : Status::Ok(); };
    auto image = Checkpoint(child.pid(), options);
    ASSERT_FALSE(image.ok()) << step;
    EXPECT_NE(testing::ProcState(child.pid()), 't') << step;
  }
  int status = child.WaitExit(60000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_EQ(ReadLines(out), ReadLines(ref));
}

// Debian's python3: four threads hashing four files (hashlib drops the GIL),
// the digests printed at the end.
TEST_F(ThreadsTest, Python3WithFourHashingThreads) {
  const std::string script = tmp_ / "hash.py";
  std::ofstream(script) << "import hashlib, sys, threading\n"
                           "files = sys.argv[1:]\n"
                           "out = [None] * len(files)\n"
                           "def work(i):\n"
                           "    h = hashlib.sha256()\n"
                           "    for _ in range(12):\n"
                           "        with open(files[i], 'rb') as f:\n"
                           "            while True:\n"
                           "                b = f.read(1 << 16)\n"
                           "                if not b: break\n"
                           "                h.update(b)\n"
                           "    out[i] = h.hexdigest()\n"
                           "ts = [threading.Thread(target=work, args=(i,), name='hasher-%d' % i) for i in range(len(files))]\n"
                           "for t in ts: t.start()\n"
                           "print('started', flush=True)\n"
                           "for t in ts: t.join()\n"
                           "for i, d in enumerate(out): print(i, d)\n";
  std::vector<std::string> args{"-u", script};
  for (int i = 0; i < 4; ++i) {
    const std::string f = tmp_ / ("data" + std::to_string(i));
    ASSERT_EQ(sparetime::testing::RunCommand("head -c 8M /dev/urandom > " + f).exit_code, 0);
    args.push_back(f);
  }
  const std::string ref = tmp_ / "ref.txt", out = tmp_ / "out.txt";
  ASSERT_EQ(RunToEnd("/usr/bin/python3", args, ref), 0);
  ASSERT_EQ(ReadLines(ref).size(), 5u);

  Child child("/usr/bin/python3", args, out);
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "started"); }));
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(ReadLines(out).size(), 1u) << "finished before the checkpoint";
  const int threads = ThreadCount(child.pid());
  ASSERT_GE(threads, 2);
  MoveThroughImageFile(child.pid(), static_cast<size_t>(threads));
  int status = child.WaitExit(60000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  auto a = ReadFileToString(ref), b = ReadFileToString(out);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*b, *a);
}

// `xz -T2 -0` of 8 MiB of numbers (11 blocks of 768 KiB, about a second):
// its worker threads caught mid-run; the compressed bytes equal an
// uninterrupted run's. (The 300 MB case is in bench/.)
TEST_F(ThreadsTest, XzWithTwoThreads) {
  const std::string input = tmp_ / "input";
  ASSERT_EQ(sparetime::testing::RunCommand("seq 1 1200000 > " + input).exit_code, 0);
  const std::string ref = tmp_ / "ref.xz", out = tmp_ / "out.xz";
  const std::vector<std::string> args{"-T2", "-0", "-c", input};
  ASSERT_EQ(RunToEnd("/usr/bin/xz", args, ref), 0);

  Child child("/usr/bin/xz", args, out);
  ASSERT_TRUE(WaitUntil([&] { return ThreadCount(child.pid()) >= 3; }));
  std::this_thread::sleep_for(50ms);
  const int threads = ThreadCount(child.pid());
  ASSERT_GE(threads, 3) << "xz finished or has no worker threads";
  MoveThroughImageFile(child.pid(), static_cast<size_t>(threads));
  int status = child.WaitExit(60000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  auto a = ReadFileToString(ref), b = ReadFileToString(out);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(a->size(), 100000u);
  EXPECT_TRUE(*a == *b) << "sizes " << a->size() << " vs " << b->size();
}

}  // namespace
}  // namespace sparetime::migration
