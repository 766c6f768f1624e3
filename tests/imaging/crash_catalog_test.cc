// Crash tests for the Catalog and its backup journal over a FaultEnv (its
// SQLite database reaches the FaultEnv through SqliteDb's Env VFS). A
// sequence of journal records, snapshot additions, a clear and a forget runs
// with the power cut at every sync point, or with EIO/ENOSPC at every
// mutation; after the cut the reopened catalog must be in exactly the state
// after the last acknowledged operation, or after the one that was running
// (each is one transaction): no acknowledged snapshot lost, none half
// written, journal rows all-or-nothing. The reference states come from the
// same operations on a catalog outside the FaultEnv.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "crash_testing.h"
#include "sparetime/base/bytes.h"
#include "sparetime/imaging/catalog.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::TempDir;
using testing::TestChunkId;

Snapshot MakeSnapshot(const std::string& id, int64_t time) {
  Snapshot s;
  s.id = id;
  s.label = "label " + id;
  s.time = time;
  s.device.path = "/dev/sdz";
  s.device.kind = "block";
  s.device.size = 64 << 20;
  s.device.logical_block_size = 4096;
  s.device.serial = "SERIAL-" + id;
  s.size = 64 << 20;
  s.chunk_size = 1 << 20;
  s.manifest_root = TestChunkId(static_cast<uint64_t>(time));
  s.stats = {.chunks = 64, .holes = 3, .new_chunks = 10, .new_bytes = 10 << 20,
             .stored_bytes = 4321, .resumed_chunks = 2, .seconds = 1.5};
  return s;
}

using Op = std::function<Status(Catalog&)>;

std::vector<Op> Operations() {
  auto record = [](std::string job, uint64_t first, uint64_t n) -> Op {
    return [=](Catalog& c) {
      std::vector<std::pair<uint64_t, ChunkId>> done;
      for (uint64_t i = first; i < first + n; ++i) done.emplace_back(i, TestChunkId(100 + i));
      return c.RecordProgress(job, done);
    };
  };
  auto add = [](std::string id, int64_t time) -> Op {
    return [=](Catalog& c) { return c.AddSnapshot(MakeSnapshot(id, time)).status(); };
  };
  return {
      record("job-a", 0, 3),
      record("job-a", 3, 3),
      add("00000000000000a1", 1000),
      [](Catalog& c) { return c.ClearProgress("job-a"); },
      record("job-b", 0, 2),
      add("00000000000000a2", 2000),
      [](Catalog& c) { return c.ForgetSnapshot("00000000000000a1"); },
      add("00000000000000a3", 3000),
  };
}

// Everything the catalog holds, as one comparable string.
std::string State(Catalog& c) {
  std::string out;
  Result<std::vector<Snapshot>> snaps = c.ListSnapshots();
  if (!snaps.ok()) return "ListSnapshots failed: " + snaps.status().ToString();
  for (const Snapshot& s : *snaps) {
    out += "snapshot " + s.id + " " + s.label + " " + std::to_string(s.time) + " " +
           s.device.ToJson().dump() + " " + std::to_string(s.size) + " " +
           std::to_string(s.chunk_size) + " " + s.manifest_root.hex() + " " +
           s.stats.ToJson().dump() + "\n";
  }
  for (const char* job : {"job-a", "job-b"}) {
    Result<std::optional<JobProgress>> p = c.LoadProgress(job);
    if (!p.ok()) return "LoadProgress failed: " + p.status().ToString();
    if (!*p) continue;
    out += std::string("job ") + job + ":";
    for (const auto& [idx, id] : (*p)->done) out += " " + std::to_string(idx) + "=" + id.hex();
    out += "\n";
  }
  return out;
}

class CrashCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The state after each prefix of the operations, from a catalog outside the FaultEnv.
    auto ref = Catalog::Open(tmp_ / "reference.db");
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    states_.push_back(State(**ref));
    for (const Op& op : Operations()) {
      ASSERT_TRUE(op(**ref).ok());
      states_.push_back(State(**ref));
    }
  }

  void Reset() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path() + suffix);
  }
  std::string path() const { return tmp_ / "catalog.db"; }

  // Runs the operations through env_ until the first failure; returns how
  // many succeeded (-1: Open failed) and the failure.
  std::pair<int, Status> Run() {
    auto c = Catalog::Open(path(), {.env = &env_});
    if (!c.ok()) return {-1, c.status()};
    int acked = 0;
    for (const Op& op : Operations()) {
      if (Status st = op(**c); !st.ok()) return {acked, st};
      ++acked;
    }
    return {acked, Status::Ok()};
  }

  // The reopened catalog holds the state after `acked` or `acked + 1` operations.
  void CheckReopened(int acked) {
    auto c = Catalog::Open(path());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    const std::string got = State(**c);
    const size_t done = static_cast<size_t>(std::max(acked, 0));
    const bool before = got == states_[done];
    const bool after = done + 1 < states_.size() && got == states_[done + 1];
    EXPECT_TRUE(before || after) << "after " << acked << " acknowledged operations the catalog "
                                 << "holds:\n" << got << "expected:\n" << states_[done]
                                 << "or:\n" << (done + 1 < states_.size() ? states_[done + 1] : "");
  }

  TempDir tmp_;
  FaultEnv env_;
  std::vector<std::string> states_;
  std::pair<int, Status> result_;
};

TEST_F(CrashCatalogTest, PowerCutAtEverySyncPointKeepsEveryAcknowledgedOperation) {
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(); }, [&] { result_ = Run(); },
      [&](const CrashPoint& p) {
        if (p.k == p.total) {
          EXPECT_TRUE(result_.second.ok()) << result_.second.ToString();
        }
        CheckReopened(result_.first);
      });
  // Schema creation and eight transactions, each with a WAL fsync.
  EXPECT_GE(points, 9u);
}

TEST_F(CrashCatalogTest, EioAndEnospcAtEveryMutationSurfaceAndStayConsistent) {
  uint64_t surfaced = 0;
  const uint64_t mutations = testing::FailEveryMutation(
      env_, [&] { Reset(); }, [&] { result_ = Run(); },
      [&](const CrashPoint& p) {
        if (!result_.second.ok()) {
          ++surfaced;
          EXPECT_EQ(result_.second.code(), testing::CodeFor(p.error))
              << result_.second.ToString();
        }
        CheckReopened(result_.first);
      });
  EXPECT_GE(mutations, 9u);
  EXPECT_GT(surfaced, mutations / 2);
  std::cout << "catalog: " << mutations << " mutations, " << surfaced << " faults surfaced\n";
}

}  // namespace
}  // namespace sparetime
