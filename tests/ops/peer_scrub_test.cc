// ScrubHeld (issue 21 part 2) over a real PeerStore on disk: every blob of
// every owner is read; a byte flipped in a pack is found, counted, recorded
// with its id and dropped (HasChunks says false); a run stopped by its gate
// saves the cursor and the next run resumes after it, reading each chunk
// exactly once per pass; a damaged state file starts a fresh pass.
#include "sparetime/ops/peer_scrub.h"

#include <gtest/gtest.h>

#include <fstream>

#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using peerstore::PeerStore;

ChunkId Id(uint8_t fill) {
  ChunkId id;
  id.bytes.fill(std::byte{fill});
  return id;
}

// Counts the bytes it lets through and cancels after `allow` calls.
class CountingGate : public PauseGate {
 public:
  explicit CountingGate(int allow) : allow_(allow) {}
  Status WaitWhilePaused(uint64_t bytes) override {
    if (calls_ == allow_) return Status(ErrorCode::kCancelled, "the box is busy");
    ++calls_;
    bytes_ += bytes;
    return Status::Ok();
  }
  int calls_ = 0;
  uint64_t bytes_ = 0;

 private:
  int allow_;
};

class PeerScrubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = PeerStore::Open(dir_ / "held", {1 << 30, 0});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    // alpha: 6 chunks of 1000 bytes; beta: 2 of 500.
    for (uint8_t i = 1; i <= 6; ++i) Put("alpha", Id(i), 1000, i);
    for (uint8_t i = 1; i <= 2; ++i) Put("beta", Id(i), 500, 100 + i);
    ASSERT_TRUE(store_->Flush("alpha").ok());
    ASSERT_TRUE(store_->Flush("beta").ok());
  }
  void Put(const std::string& owner, const ChunkId& id, size_t n, uint64_t seed) {
    std::vector<std::byte> blob = testing::RandomBytes(n, seed);
    ASSERT_TRUE(store_->Put(owner, id, blob, HashBlob(blob)).ok());
  }
  ScrubRequest Request(PauseGate* gate) {
    ScrubRequest r;
    r.state_path = ScrubStatePath(dir_.path());
    r.gate = gate;
    r.now = [this] { return now_; };
    r.on_damage = [this](const ScrubDamage& d) { damage_.push_back(d); };
    return r;
  }
  // Flips one byte in the middle of alpha's blob of `id` (6 x 1000 bytes
  // in one pack, in put order: each record a 40-byte header + its blob).
  void Flip(int index) {
    std::vector<std::string> packs = testing::PackFiles(dir_ / "held/alpha/chunks");
    ASSERT_EQ(packs.size(), 1u);
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    const std::streamoff at = size - (6 - index) * 1040 + 540;
    char c = 0;
    f.seekg(at);
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x04));
    ASSERT_TRUE(f.good());
  }

  testing::TempDir dir_;
  std::unique_ptr<PeerStore> store_;
  int64_t now_ = 1'700'000'000;
  std::vector<ScrubDamage> damage_;
};

TEST_F(PeerScrubTest, ReadsEveryBlobOfEveryOwnerAndRecordsThePass) {
  CountingGate gate(1000);
  Result<ScrubReport> r = ScrubHeld(*store_, Request(&gate));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->owners, 2u);
  EXPECT_EQ(r->checked, 8u);
  EXPECT_EQ(r->bytes, 6u * 1000 + 2 * 500);
  EXPECT_EQ(r->damaged, 0u);
  EXPECT_EQ(r->passes_completed, 2u);
  EXPECT_EQ(gate.bytes_, 7000u);  // every blob's bytes went through the rate limit
  Result<ScrubState> st = LoadScrubState(ScrubStatePath(dir_.path()));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->owners["alpha"].last_complete, now_);
  EXPECT_EQ(st->owners["alpha"].passes, 1u);
  EXPECT_EQ(st->owners["alpha"].checked, 6u);
  EXPECT_EQ(st->owners["alpha"].cursor, "");
  EXPECT_EQ(st->owners["beta"].checked, 2u);
}

TEST_F(PeerScrubTest, DamageIsFoundRecordedAndTheCopyDropped) {
  ASSERT_NO_FATAL_FAILURE(Flip(2));  // Id(3)
  Result<ScrubReport> r = ScrubHeld(*store_, Request(nullptr));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->damaged, 1u);
  ASSERT_EQ(damage_.size(), 1u);
  EXPECT_EQ(damage_[0].owner, "alpha");
  EXPECT_EQ(damage_[0].id_hex, Id(3).hex());
  // Dropped: HasChunks says false, so the owner's repair re-replicates it.
  std::vector<ChunkId> ids = {Id(2), Id(3), Id(4)};
  Result<std::vector<bool>> has = store_->Has("alpha", ids);
  ASSERT_TRUE(has.ok());
  EXPECT_EQ(*has, (std::vector<bool>{true, false, true}));
  Result<ScrubState> st = LoadScrubState(ScrubStatePath(dir_.path()));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->owners["alpha"].damaged, 1u);
  ASSERT_EQ(st->damage.size(), 1u);
  EXPECT_EQ(st->damage[0].id_hex, Id(3).hex());
  // A good copy sent again is stored (not "already held" with bad bytes).
  std::vector<std::byte> good = testing::RandomBytes(1000, 3);
  Result<bool> again = store_->Put("alpha", Id(3), good, HashBlob(good));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  // The next pass finds nothing new; the damage count stays.
  damage_.clear();
  r = ScrubHeld(*store_, Request(nullptr));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->damaged, 0u);
  EXPECT_EQ(r->checked, 8u);
  st = LoadScrubState(ScrubStatePath(dir_.path()));
  EXPECT_EQ(st->owners["alpha"].damaged, 1u);
  EXPECT_EQ(st->owners["alpha"].passes, 2u);
}

TEST_F(PeerScrubTest, AStoppedRunResumesAtItsCursor) {
  CountingGate first(4);  // alpha's first 4 chunks, then "busy"
  Result<ScrubReport> r = ScrubHeld(*store_, Request(&first));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCancelled);
  Result<ScrubState> st = LoadScrubState(ScrubStatePath(dir_.path()));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->owners["alpha"].cursor, Id(4).hex());
  EXPECT_EQ(st->owners["alpha"].checked, 4u);
  EXPECT_EQ(st->owners["alpha"].last_complete, 0);

  now_ += 60;
  CountingGate second(1000);
  r = ScrubHeld(*store_, Request(&second));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->resumed, 1u);
  EXPECT_EQ(r->checked, 4u);  // alpha's last 2 and beta's 2: nothing read twice
  EXPECT_EQ(second.bytes_, 2u * 1000 + 2 * 500);
  st = LoadScrubState(ScrubStatePath(dir_.path()));
  EXPECT_EQ(st->owners["alpha"].checked, 6u);
  EXPECT_EQ(st->owners["alpha"].passes, 1u);
  EXPECT_EQ(st->owners["alpha"].last_complete, now_);
  EXPECT_EQ(st->owners["alpha"].cursor, "");
}

TEST_F(PeerScrubTest, ADamagedStateFileStartsAFreshPass) {
  ASSERT_TRUE(WriteFileAtomic(ScrubStatePath(dir_.path()), "{\"version\": 1, \"owners\": 3}").ok());
  EXPECT_EQ(LoadScrubState(ScrubStatePath(dir_.path())).status().code(), ErrorCode::kCorruption);
  Result<ScrubReport> r = ScrubHeld(*store_, Request(nullptr));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->checked, 8u);
  EXPECT_TRUE(LoadScrubState(ScrubStatePath(dir_.path())).ok());
}

}  // namespace
}  // namespace sparetime::ops
