// PeerServer + PeerClient over real TCP on 127.0.0.1: owners' chunks, roots
// and keys; who may write what; impostors refused; quota errors per chunk;
// garbage and dead connections end only their session; pipelining; Stop()
// with sessions open.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "sparetime/peer/peer_client.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"
#include "sparetime/transport/net.h"
#include "sparetime/base/fd.h"
#include "testutil/agent_process.h"
#include "testutil/fake_clock.h"
#include "testutil/testutil.h"

namespace sparetime::peer {
namespace {

using transport::Identity;
using transport::PutChunksRequest;

// The value, or a test failure naming the error (and a default value).
template <typename T>
T Must(Result<T> r) {
  if (r.ok()) return std::move(*r);
  ADD_FAILURE() << r.status().ToString();
  return T{};
}

class PeerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = peerstore::PeerStore::Open(dir_ / "held", {/*capacity=*/64 << 20,
                                                            /*owner_quota=*/8 << 20});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto holds = peerstore::ReadHolds::Open(dir_ / "read-holds", clock_);
    ASSERT_TRUE(holds.ok()) << holds.status().ToString();
    holds_ = std::move(*holds);
    PeerServerOptions o;
    o.holds = holds_.get();
    o.listen_address = "127.0.0.1";
    o.port = 0;
    o.handshake_timeout = std::chrono::milliseconds(2000);
    o.idle_timeout = std::chrono::milliseconds(5000);
    o.log = [this](const std::string& line) {
      std::lock_guard l(log_mu_);
      log_ += line + "\n";
    };
    // As the daemon does from the directory: alpha's entry names beta in
    // sparetimeRestoreFor; gamma is enrolled but named nowhere.
    o.may_read = [](const std::string& caller, const std::string& owner) -> Status {
      if (owner == "alpha" && caller == "beta") return Status::Ok();
      return Status(ErrorCode::kPermissionDenied, caller + " is not in " + owner +
                                                      "'s sparetimeRestoreFor");
    };
    // delta is alpha's caretaker (docs/peers.md "Caretaker"), as the
    // daemon's ops::MayCareFor would say for a silent alpha.
    o.may_care_for = [](const std::string& caller, const std::string& owner) -> Status {
      if (owner == "alpha" && caller == "delta") return Status::Ok();
      return Status(ErrorCode::kPermissionDenied, caller + " is not the caretaker of " + owner);
    };
    auto lookup = [this](const transport::PublicKey& key) -> Result<std::string> {
      if (key == delta_.public_key()) return std::string("delta");
      if (key == alpha_.public_key()) return std::string("alpha");
      if (key == beta_.public_key()) return std::string("beta");
      if (key == gamma_.public_key()) return std::string("gamma");
      return Status(ErrorCode::kPermissionDenied, "key " + key.ToBase64() + " is not in the directory");
    };
    auto server = PeerServer::Start(server_id_, *store_, lookup, o);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  std::unique_ptr<PeerClient> ConnectAs(const Identity& me) {
    PeerEndpoint e{"server", "127.0.0.1", server_->port(), server_id_.public_key()};
    auto c = PeerClient::Connect(e, me);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string Log() {
    std::lock_guard l(log_mu_);
    return log_;
  }

  testing::TempDir dir_;
  Identity server_id_ = Identity::Generate();
  Identity alpha_ = Identity::Generate();
  Identity beta_ = Identity::Generate();
  Identity gamma_ = Identity::Generate();
  Identity delta_ = Identity::Generate();
  std::unique_ptr<peerstore::PeerStore> store_;
  testing::FakeClock clock_;
  std::unique_ptr<peerstore::ReadHolds> holds_;
  std::unique_ptr<PeerServer> server_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(PeerServiceTest, OwnerStoresAnEntitledAgentMayOnlyRead) {
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  std::vector<PutChunksRequest::Item> items;
  for (int i = 0; i < 5; ++i) items.push_back({testing::TestChunkId(i), testing::RandomBytes(10000, i)});
  auto put = alpha->PutChunks(items);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  for (const Status& s : *put) EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<ChunkId> ids = {testing::TestChunkId(0), testing::TestChunkId(4), testing::TestChunkId(9)};
  EXPECT_EQ(Must(alpha->Has("", ids)), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(Must(alpha->GetChunk("", testing::TestChunkId(3))), items[3].sealed);
  ASSERT_TRUE(alpha->PutRoots(1, testing::RandomBytes(100, 1)).ok());
  ASSERT_TRUE(alpha->PutWrappedKey(testing::RandomBytes(90, 2)).ok());
  auto stats = alpha->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunk_count, 5u);
  EXPECT_EQ(stats->quota_bytes, 8u << 20);

  // beta (the rescue box alpha's entry names) reads alpha's sealed data...
  auto beta = ConnectAs(beta_);
  ASSERT_TRUE(beta);
  EXPECT_EQ(Must(beta->Has("alpha", ids)), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(Must(beta->GetChunk("alpha", testing::TestChunkId(2))), items[2].sealed);
  EXPECT_EQ(Must(beta->GetRoots("alpha")).roots, testing::RandomBytes(100, 1));
  EXPECT_EQ(Must(beta->GetWrappedKey("alpha")), testing::RandomBytes(90, 2));
  // ... but its writes and releases touch only its own space.
  EXPECT_EQ(Must(beta->Release(ids)), 0u);
  EXPECT_EQ(Must(alpha->Has("", ids)), (std::vector<bool>{true, true, false}));
  ASSERT_TRUE(beta->PutRoots(1, testing::RandomBytes(10, 3)).ok());
  EXPECT_EQ(Must(alpha->GetRoots("")).roots, testing::RandomBytes(100, 1));
  EXPECT_EQ(Must(beta->Has("", ids)).at(0), false);
  // The owner releases its own.
  EXPECT_EQ(Must(alpha->Release(ids)), 2u);
  EXPECT_EQ(Must(alpha->Has("", ids)), (std::vector<bool>{false, false, false}));
  EXPECT_TRUE(alpha->Close().ok());
  EXPECT_TRUE(beta->Close().ok());
}

// A read hold (a --host mount elsewhere) defers every release of the held
// owner until it is dropped or lapses; only an agent that may read the
// owner's backups may hold them.
TEST_F(PeerServiceTest, AReadHoldDefersTheOwnersReleasesUntilDroppedOrExpired) {
  auto alpha = ConnectAs(alpha_);
  auto beta = ConnectAs(beta_);
  auto gamma = ConnectAs(gamma_);
  ASSERT_TRUE(alpha && beta && gamma);
  std::vector<PutChunksRequest::Item> items;
  for (int i = 0; i < 4; ++i) items.push_back({testing::TestChunkId(i), testing::RandomBytes(1000, i)});
  ASSERT_TRUE(alpha->PutChunks(items).ok());
  const std::vector<ChunkId> first = {testing::TestChunkId(0), testing::TestChunkId(1)};
  const std::vector<ChunkId> rest = {testing::TestChunkId(2), testing::TestChunkId(3)};

  Status refused = gamma->HoldSnapshot("alpha", "s1", 60);
  EXPECT_EQ(refused.code(), ErrorCode::kPermissionDenied) << refused.ToString();
  EXPECT_NE(Log().find("refused: gamma tried to hold a snapshot of alpha"), std::string::npos) << Log();
  ASSERT_TRUE(alpha->Release(first).ok());  // gamma's refused hold holds nothing
  EXPECT_EQ(Must(alpha->Has("", first)), (std::vector<bool>{false, false}));

  ASSERT_TRUE(beta->HoldSnapshot("alpha", "s1", 60).ok());
  Result<uint32_t> deferred = alpha->Release(rest);
  ASSERT_FALSE(deferred.ok());
  EXPECT_EQ(deferred.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(deferred.status().message().find("deferred: snapshot s1 of alpha is mounted by beta until"),
            std::string::npos) << deferred.status().ToString();
  EXPECT_EQ(Must(alpha->Has("", rest)), (std::vector<bool>{true, true}));
  // The hold is on alpha only: beta releases its own space freely.
  EXPECT_EQ(Must(beta->Release(rest)), 0u);
  // Dropped (the unmount): the release goes through.
  ASSERT_TRUE(beta->HoldSnapshot("alpha", "s1", 0).ok());
  EXPECT_EQ(Must(alpha->Release({testing::TestChunkId(2)})), 1u);

  // Lapsed (a mounter that died): 60 s later without renewal.
  ASSERT_TRUE(beta->HoldSnapshot("alpha", "s1", 60).ok());
  clock_.Advance(std::chrono::seconds(59));
  EXPECT_EQ(alpha->Release({testing::TestChunkId(3)}).status().code(), ErrorCode::kUnavailable);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Must(alpha->Release({testing::TestChunkId(3)})), 1u);
  EXPECT_EQ(holds_->Live("").size(), 0u);
}

// An agent the directory does not entitle gets none of another owner's
// wrapped key, roots or chunks: each read is refused and logged, and its
// session stays usable for its own space.
TEST_F(PeerServiceTest, UnentitledAgentsCannotReadAnotherOwnersBackups) {
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  std::vector<PutChunksRequest::Item> items = {{testing::TestChunkId(1), testing::RandomBytes(500, 1)}};
  ASSERT_TRUE(alpha->PutChunks(items).ok());
  ASSERT_TRUE(alpha->PutRoots(1, testing::RandomBytes(100, 1)).ok());
  ASSERT_TRUE(alpha->PutWrappedKey(testing::RandomBytes(90, 2)).ok());
  auto gamma = ConnectAs(gamma_);
  ASSERT_TRUE(gamma);
  std::vector<ChunkId> ids = {testing::TestChunkId(1)};
  EXPECT_EQ(gamma->GetWrappedKey("alpha").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(gamma->GetRoots("alpha").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(gamma->GetChunk("alpha", testing::TestChunkId(1)).status().code(),
            ErrorCode::kPermissionDenied);
  auto has = gamma->Has("alpha", ids);
  EXPECT_EQ(has.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(has.status().message().find("gamma is not in alpha's sparetimeRestoreFor"),
            std::string::npos) << has.status().message();
  // The session lives on, for its own (empty) space.
  EXPECT_EQ(Must(gamma->Has("", ids)), (std::vector<bool>{false}));
  EXPECT_EQ(Must(gamma->Has("gamma", ids)), (std::vector<bool>{false}));
  const std::string log = Log();
  EXPECT_NE(log.find("refused: gamma tried to get the wrapped key of alpha"), std::string::npos) << log;
  EXPECT_NE(log.find("refused: gamma tried to get the snapshot list of alpha"), std::string::npos);
  EXPECT_NE(log.find("refused: gamma tried to get a chunk of alpha"), std::string::npos);
  EXPECT_NE(log.find("refused: gamma tried to ask which chunks it holds of alpha"), std::string::npos);
  EXPECT_TRUE(gamma->Close().ok());
  EXPECT_TRUE(alpha->Close().ok());
}

TEST_F(PeerServiceTest, RefusalsComeBackAsStatusesAndTheSessionLives) {
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  // Missing chunk, stale roots: errors, and the session goes on.
  EXPECT_EQ(alpha->GetChunk("", testing::TestChunkId(77)).status().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(alpha->PutRoots(5, testing::RandomBytes(10, 1)).ok());
  Status stale = alpha->PutRoots(4, testing::RandomBytes(10, 2));
  EXPECT_EQ(stale.code(), ErrorCode::kFailedPrecondition) << stale.ToString();
  EXPECT_NE(stale.message().find("peer server"), std::string::npos);
  // Up to the 8 MiB owner quota (the roots above count too): 2 x 3 MiB, then a batch of 3 x 1 MiB whose
  // last chunk is refused alone.
  for (int i = 0; i < 2; ++i) {
    auto big = alpha->PutChunks({{testing::TestChunkId(i), testing::RandomBytes(3 << 20, i)}});
    ASSERT_TRUE(big.ok()) << big.status().ToString();
    ASSERT_TRUE(big->at(0).ok()) << big->at(0).ToString();
  }
  std::vector<PutChunksRequest::Item> items;
  for (int i = 2; i < 5; ++i) {
    items.push_back({testing::TestChunkId(i), testing::RandomBytes((1 << 20) - 100, i)});
  }
  auto put = alpha->PutChunks(items);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_TRUE((*put)[0].ok());
  EXPECT_TRUE((*put)[1].ok());
  EXPECT_EQ((*put)[2].code(), ErrorCode::kNoSpace);
  EXPECT_NE((*put)[2].message().find("quota"), std::string::npos) << (*put)[2].message();
  EXPECT_EQ(Must(alpha->Has("", std::vector<ChunkId>{testing::TestChunkId(0)})).at(0), true);
}

TEST_F(PeerServiceTest, ImpostorGetsNoSession) {
  Identity impostor = Identity::Generate();
  PeerEndpoint e{"server", "127.0.0.1", server_->port(), server_id_.public_key()};
  auto c = PeerClient::Connect(e, impostor);
  ASSERT_FALSE(c.ok());
  // The client may see the REJECT before the server thread has counted it.
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return Log().find("is not in the directory") != std::string::npos; },
      std::chrono::seconds(5)))
      << Log();
  EXPECT_EQ(server_->sessions_refused(), 1u);
  // A client expecting another server key refuses the server.
  PeerEndpoint wrong{"server", "127.0.0.1", server_->port(), beta_.public_key()};
  auto w = PeerClient::Connect(wrong, alpha_);
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(ConnectAs(alpha_) != nullptr);  // the server is fine
}

TEST_F(PeerServiceTest, GarbageAndDeadConnectionsEndOnlyTheirSession) {
  for (const std::string& junk : {std::string("GET / HTTP/1.1\r\n\r\n"), std::string(70000, 'x'),
                                  std::string("\x01", 1)}) {
    auto fd = transport::ConnectTcp("127.0.0.1", server_->port(), std::chrono::seconds(2));
    ASSERT_TRUE(fd.ok());
    WriteFull(fd->get(), AsBytes(junk)).IgnoreError();  // the server may hang up first
  }  // closed abruptly
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  EXPECT_TRUE(alpha->Stats().ok());
}

TEST_F(PeerServiceTest, PipelinedRequestsComeBackInOrder) {
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  std::vector<PutChunksRequest::Item> items;
  for (int i = 0; i < 16; ++i) items.push_back({testing::TestChunkId(i), testing::RandomBytes(1000 + i, i)});
  ASSERT_TRUE(alpha->PutChunks(items).ok());
  std::vector<uint32_t> ids;
  for (int i = 0; i < 16; ++i) {
    auto id = alpha->SendRequest(transport::GetChunkRequest{"", testing::TestChunkId(i)});
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  for (int i = 0; i < 16; ++i) {
    auto reply = alpha->ReceiveReply(ids[i]);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    auto* chunk = std::get_if<transport::ChunkReply>(&reply->body);
    ASSERT_NE(chunk, nullptr);
    EXPECT_EQ(chunk->sealed, items[i].sealed);
  }
}

TEST_F(PeerServiceTest, StopEndsOpenSessionsPromptly) {
  auto alpha = ConnectAs(alpha_);
  auto beta = ConnectAs(beta_);
  ASSERT_TRUE(alpha && beta);
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_FALSE(alpha->Stats().ok());  // the session is gone, with an error
}

}  // namespace
}  // namespace sparetime::peer

namespace sparetime::peer {
namespace {

// The caretaker rule (issue 21): delta, alpha's caretaker, lists, reads and
// stores alpha's sealed chunks — never its key or roots; a copy already held
// is OK and stores nothing (two caretakers are harmless); alpha's quota
// bounds it; gamma, not the caretaker, is refused and nothing is stored.
TEST_F(PeerServiceTest, TheCaretakerListsReadsAndStoresWithinTheOwnersQuota) {
  auto alpha = ConnectAs(alpha_);
  auto delta = ConnectAs(delta_);
  auto gamma = ConnectAs(gamma_);
  ASSERT_TRUE(alpha && delta && gamma);
  std::vector<PutChunksRequest::Item> items;
  for (int i = 0; i < 3; ++i) items.push_back({testing::TestChunkId(i), testing::RandomBytes(1000, i)});
  ASSERT_TRUE(alpha->PutChunks(items).ok());
  ASSERT_TRUE(alpha->PutRoots(1, testing::RandomBytes(50, 1)).ok());

  std::vector<ChunkId> listed = Must(delta->ListChunks("alpha"));
  std::vector<ChunkId> expected = {testing::TestChunkId(0), testing::TestChunkId(1), testing::TestChunkId(2)};
  std::sort(expected.begin(), expected.end(), [](const ChunkId& a, const ChunkId& b) { return a.bytes < b.bytes; });
  EXPECT_EQ(listed, expected);
  EXPECT_EQ(Must(alpha->ListChunks("")), expected);
  EXPECT_EQ(Must(delta->GetChunk("alpha", testing::TestChunkId(1))), items[1].sealed);
  EXPECT_EQ(delta->GetRoots("alpha").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(delta->GetWrappedKey("alpha").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(gamma->ListChunks("alpha").status().code(), ErrorCode::kPermissionDenied);

  // A copy for alpha, and one alpha already has: both OK, one stored.
  std::vector<PutChunksRequest::Item> copies = {{testing::TestChunkId(7), testing::RandomBytes(1000, 7)},
                                                items[0]};
  std::vector<Status> put = Must(delta->CaretakerPut("alpha", copies));
  ASSERT_EQ(put.size(), 2u);
  EXPECT_TRUE(put[0].ok() && put[1].ok()) << put[0].ToString() << put[1].ToString();
  EXPECT_EQ(Must(store_->Usage("alpha")).chunks, 4u);
  put = Must(delta->CaretakerPut("alpha", copies));  // a second caretaker, or a rerun
  EXPECT_TRUE(put[0].ok() && put[1].ok());
  EXPECT_EQ(Must(store_->Usage("alpha")).chunks, 4u);
  EXPECT_EQ(Must(alpha->GetChunk("", testing::TestChunkId(7))), copies[0].sealed);
  EXPECT_NE(Log().find("caretaker delta stored 1 chunk(s) (1000 bytes) for alpha"), std::string::npos) << Log();

  // Not the caretaker: refused, logged, nothing stored.
  auto refused = gamma->CaretakerPut("alpha", {{testing::TestChunkId(8), testing::RandomBytes(10, 8)}});
  EXPECT_EQ(refused.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(Log().find("refused: gamma tried to store chunks for alpha"), std::string::npos) << Log();
  EXPECT_EQ(Must(store_->Usage("alpha")).chunks, 4u);

  // alpha's quota (8 MiB) bounds the caretaker: the third 3 MiB copy is refused.
  std::vector<Status> big;
  for (int i = 10; i < 13; ++i) {
    std::vector<Status> one =
        Must(delta->CaretakerPut("alpha", {{testing::TestChunkId(i), testing::RandomBytes(3 << 20, i)}}));
    ASSERT_EQ(one.size(), 1u);
    big.push_back(one[0]);
  }
  EXPECT_TRUE(big[0].ok() && big[1].ok()) << big[0].ToString() << big[1].ToString();
  EXPECT_EQ(big[2].code(), ErrorCode::kNoSpace);
  EXPECT_NE(big[2].message().find("over quota"), std::string::npos) << big[2].message();
  EXPECT_EQ(Must(store_->Usage("alpha")).chunks, 6u);
}

TEST_F(PeerServiceTest, ListChunksPagesThroughMoreIdsThanOneReply) {
  auto alpha = ConnectAs(alpha_);
  ASSERT_TRUE(alpha);
  const int n = static_cast<int>(transport::kMaxIdsPerBatch) + 100;
  std::vector<ChunkId> ids;
  for (int start = 0; start < n; start += 1024) {
    std::vector<PutChunksRequest::Item> batch;
    for (int i = start; i < std::min(n, start + 1024); ++i) {
      batch.push_back({testing::TestChunkId(i), testing::RandomBytes(16, i)});
      ids.push_back(testing::TestChunkId(i));
    }
    ASSERT_TRUE(alpha->PutChunks(batch).ok());
  }
  std::sort(ids.begin(), ids.end(), [](const ChunkId& a, const ChunkId& b) { return a.bytes < b.bytes; });
  auto delta = ConnectAs(delta_);
  ASSERT_TRUE(delta);
  EXPECT_EQ(Must(delta->ListChunks("alpha")), ids);
}

}  // namespace
}  // namespace sparetime::peer
