// The key use cases (ops/keys.h) over a real local repository: slots with
// their own Argon2id costs, passwd that rewraps and re-encrypts nothing,
// the last slot, the paper kit round trip and a foreign kit, escrow
// recovery with the right, a wrong and another domain's key, the escrow key
// pair files, the version-1 migration, and passwd killed with SIGKILL at
// random points (the old or the new passphrase opens, never neither).
#include "sparetime/ops/keys.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/snapshots.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using sparetime::testing::RandomBytes;
using sparetime::testing::TempDir;
using sparetime::testing::WriteFileOrDie;

SecretBuffer Pass(std::string_view s) {
  SecretBuffer b(s.size());
  std::memcpy(b.span().data(), s.data(), s.size());
  return b;
}

std::string Text(const SecretBuffer& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Every file of `dir` but the key file, with its bytes.
std::map<std::string, std::string> DataFiles(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = std::filesystem::relative(e.path(), dir);
    if (rel == "key" || rel == "lock") continue;
    out[rel] = *ReadFileToString(e.path());
  }
  return out;
}

class OpsKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    where_.where = LocalRepository{repo_};
    ASSERT_TRUE(Init(where_, Pass("old"), {.chunk_size = 64 << 10, .zstd_level = 1}, fast_).ok());
    // One snapshot, so "nothing re-encrypted" has something to compare.
    WriteFileOrDie(dir_ / "disk", RandomBytes(300 << 10, 7));
    auto b = Open(where_, Pass("old"));
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    BackupRequest r;
    r.device = dir_ / "disk";
    r.buffered = true;
    ASSERT_TRUE(Backup(**b, r).ok());
  }

  bool Opens(std::string_view passphrase) { return Open(where_, Pass(passphrase)).ok(); }

  TempDir dir_;
  std::string repo_ = dir_ / "repo";
  OpenOptions where_;
  KdfLimits fast_ = KdfLimits::FastForTests();
};

TEST_F(OpsKeysTest, SlotsAddListRemoveEachWithItsOwnCost) {
  Result<uint32_t> id = AddKey(where_, Pass("old"), Pass("laptop pass"), {2, 16384}, "laptop");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 2u);
  EXPECT_EQ(AddKey(where_, Pass("wrong"), Pass("x"), fast_, "").status().code(),
            ErrorCode::kAuthFailed);
  Result<KeyListing> l = ListKeys(where_);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->version, 2);
  EXPECT_EQ(l->key_id.size(), 32u);
  ASSERT_EQ(l->slots.size(), 2u);
  EXPECT_EQ(l->slots[0].label, "init");
  EXPECT_EQ(l->slots[0].opslimit, 1u);
  EXPECT_EQ(l->slots[1].label, "laptop");
  EXPECT_EQ(l->slots[1].opslimit, 2u);
  EXPECT_EQ(l->slots[1].memlimit, 16384u);
  EXPECT_FALSE(l->escrow_public_key.has_value());
  EXPECT_TRUE(Opens("old"));
  EXPECT_TRUE(Opens("laptop pass"));
  // Revoke the first one, with the second.
  ASSERT_TRUE(RemoveKey(where_, Pass("laptop pass"), 1).ok());
  EXPECT_FALSE(Opens("old"));
  EXPECT_TRUE(Opens("laptop pass"));
  EXPECT_EQ(RemoveKey(where_, Pass("laptop pass"), 9).code(), ErrorCode::kNotFound);
}

TEST_F(OpsKeysTest, TheLastSlotCannotBeRemovedWithoutEscrow) {
  Status st = RemoveKey(where_, Pass("old"), 1);
  EXPECT_EQ(st.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("sparetime key add"), std::string::npos) << st.message();
  EXPECT_TRUE(Opens("old"));
  EXPECT_EQ(ListKeys(where_)->slots.size(), 1u);
}

TEST_F(OpsKeysTest, PasswdRewrapsAndReencryptsNothing) {
  const auto before = DataFiles(repo_);
  ASSERT_GT(before.size(), 3u);
  Result<uint32_t> id = ChangePassphrase(where_, Pass("old"), Pass("new"), fast_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 2u);
  EXPECT_EQ(DataFiles(repo_), before);
  EXPECT_FALSE(Opens("old"));
  auto b = Open(where_, Pass("new"));
  ASSERT_TRUE(b.ok());
  Result<std::vector<Snapshot>> snaps = ListSnapshots(**b);
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ(snaps->size(), 1u);
  Result<KeyListing> l = ListKeys(where_);
  ASSERT_EQ(l->slots.size(), 1u);
  EXPECT_EQ(l->slots[0].label, "init");  // the label stays with the way in
  EXPECT_EQ(ChangePassphrase(where_, Pass("old"), Pass("x"), fast_).status().code(),
            ErrorCode::kAuthFailed);
}

TEST_F(OpsKeysTest, PaperKitRoundTripAndAForeignKit) {
  Result<SecretBuffer> kit = ExportPaperKit(where_, Pass("old"));
  ASSERT_TRUE(kit.ok()) << kit.status().ToString();
  ASSERT_NE(Text(*kit).find("key id: " + ListKeys(where_)->key_id), std::string::npos);
  // The passphrase is forgotten: the kit alone gets a new one in.
  ASSERT_TRUE(RemoveKey(where_, Pass("old"), 1).code() == ErrorCode::kFailedPrecondition);
  Result<uint32_t> id = ImportPaperKit(where_, Text(*kit), Pass("from paper"), fast_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(Opens("from paper"));
  // A kit of another repository is refused, naming both keys.
  TempDir other;
  OpenOptions o;
  o.where = LocalRepository{other / "repo"};
  ASSERT_TRUE(Init(o, Pass("o"), {}, fast_).ok());
  Result<SecretBuffer> foreign = ExportPaperKit(o, Pass("o"));
  ASSERT_TRUE(foreign.ok());
  Result<uint32_t> refused = ImportPaperKit(where_, Text(*foreign), Pass("x"), fast_);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find(ListKeys(o)->key_id), std::string::npos);
  EXPECT_EQ(ListKeys(where_)->slots.size(), 2u);
  // One wrong character: the error names the line; nothing is added.
  std::string typo = Text(*kit);
  size_t at = typo.find("4: ") + 3;
  typo[at] = typo[at] == 'A' ? 'B' : 'A';
  Result<uint32_t> bad = ImportPaperKit(where_, typo, Pass("x"), fast_);
  EXPECT_NE(bad.status().message().find("line 4 of the recovery kit is wrong"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(ListKeys(where_)->slots.size(), 2u);
}

TEST_F(OpsKeysTest, EscrowKeyPairFiles) {
  const std::string secret = dir_ / "escrow.key";
  Result<std::string> pk = EscrowKeygen(secret);
  ASSERT_TRUE(pk.ok()) << pk.status().ToString();
  EXPECT_EQ(pk->size(), 44u);  // the directory's spelling: 32 bytes, standard base64
  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(EscrowKeygen(secret).status().code(), ErrorCode::kAlreadyExists);
  Result<SecretBuffer> sk = ReadEscrowSecretKey(secret);
  ASSERT_TRUE(sk.ok()) << sk.status().ToString();
  auto derived = EscrowPublicKeyOf(*sk);
  std::string b64(45, '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(derived.data()),
                    32, sodium_base64_VARIANT_ORIGINAL);
  EXPECT_EQ(b64.substr(0, 44), *pk);
  ASSERT_EQ(::chmod(secret.c_str(), 0644), 0);
  EXPECT_EQ(ReadEscrowSecretKey(secret).status().code(), ErrorCode::kPermissionDenied);
  WriteFileOrDie(dir_ / "junk.key", RandomBytes(10, 1));
  ASSERT_EQ(::chmod((dir_ / "junk.key").c_str(), 0600), 0);
  EXPECT_EQ(ReadEscrowSecretKey(dir_ / "junk.key").status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(OpsKeysTest, EscrowRecoveryWithTheRightAWrongAndAnotherDomainsKey) {
  ASSERT_TRUE(EscrowKeygen(dir_ / "ours.key").ok());
  ASSERT_TRUE(EscrowKeygen(dir_ / "theirs.key").ok());
  SecretBuffer ours = *ReadEscrowSecretKey(dir_ / "ours.key");
  SecretBuffer theirs = *ReadEscrowSecretKey(dir_ / "theirs.key");
  // No seal yet.
  EXPECT_EQ(RecoverWithEscrow(where_, ours, nullptr, fast_).status().code(), ErrorCode::kNotFound);
  // Seal as a policy with our escrow key would (PeerRepository does this for
  // backups on peers; here straight on the local key file).
  const std::string path = Repository::KeyFilePath(repo_);
  KeyFile file = *KeyFile::FromJson(*ReadFileToString(path));
  UnlockedKey k = *UnlockKeyFile(file, Pass("old"), nullptr);
  ASSERT_TRUE(SealToEscrow(file, k.master, EscrowPublicKeyOf(ours)).ok());
  ASSERT_TRUE(WriteFileAtomic(path, file.ToJson(), 0600).ok());
  EXPECT_TRUE(ListKeys(where_)->escrow_public_key.has_value());

  SecretBuffer np = Pass("after recovery");
  Result<EscrowRecovery> wrong = RecoverWithEscrow(where_, theirs, &np, fast_);
  EXPECT_EQ(wrong.status().code(), ErrorCode::kAuthFailed);
  EXPECT_NE(wrong.status().message().find("not the one the backups are sealed to"),
            std::string::npos) << wrong.status().message();
  EXPECT_FALSE(Opens("after recovery"));
  Result<EscrowRecovery> r = RecoverWithEscrow(where_, ours, &np, fast_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->slot.has_value());
  EXPECT_EQ(*r->slot, 2u);
  EXPECT_TRUE(Opens("after recovery"));
  EXPECT_TRUE(Opens("old"));
  // With an escrow seal the last passphrase may go; escrow still gets in.
  ASSERT_TRUE(RemoveKey(where_, Pass("old"), 1).ok());
  ASSERT_TRUE(RemoveKey(where_, Pass("after recovery"), 2).ok());
  EXPECT_EQ(ListKeys(where_)->slots.size(), 0u);
  SecretBuffer again = Pass("again");
  ASSERT_TRUE(RecoverWithEscrow(where_, ours, &again, fast_).ok());
  EXPECT_TRUE(Opens("again"));
}

TEST_F(OpsKeysTest, AVersionOneRepositoryIsMigratedByOpen) {
  // What an older sparetime wrote: the bare wrapped key.
  const std::string path = Repository::KeyFilePath(repo_);
  KeyFile v2 = *KeyFile::FromJson(*ReadFileToString(path));
  ASSERT_TRUE(WriteFileAtomic(path, v2.slots[0].wrapped.ToJson(), 0600).ok());
  EXPECT_EQ(ListKeys(where_)->version, 1);
  EXPECT_TRUE(ListKeys(where_)->key_id.empty());
  auto b = Open(where_, Pass("old"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(ListSnapshots(**b)->size(), 1u);
  Result<KeyListing> l = ListKeys(where_);
  EXPECT_EQ(l->version, 2);
  EXPECT_EQ(l->key_id, v2.key_id);
  ASSERT_EQ(l->slots.size(), 1u);
  // The slot is the same bytes: same salt, nonce, ciphertext.
  KeyFile migrated = *KeyFile::FromJson(*ReadFileToString(path));
  EXPECT_EQ(migrated.slots[0].wrapped.ToJson(), v2.slots[0].wrapped.ToJson());
}

// passwd killed by SIGKILL anywhere: the key file opens with the old
// passphrase or the new one, never neither.
TEST_F(OpsKeysTest, PasswdKilledAtAnyPointLeavesOldOrNew) {
  std::mt19937 rng(42);
  int old_opens = 0, new_opens = 0;
  for (int round = 0; round < 25; ++round) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Back and forth until killed.
      for (;;) {
        if (!ChangePassphrase(where_, Pass("old"), Pass("new"), fast_).ok()) _exit(3);
        if (!ChangePassphrase(where_, Pass("new"), Pass("old"), fast_).ok()) _exit(4);
      }
    }
    ::usleep(std::uniform_int_distribution<int>(1000, 40000)(rng));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "passwd failed in the child: exit " << WEXITSTATUS(status);
    const bool o = Opens("old"), n = Opens("new");
    EXPECT_TRUE(o != n) << "round " << round << ": old " << o << ", new " << n;
    old_opens += o;
    new_opens += n;
    if (n) {
      ASSERT_TRUE(ChangePassphrase(where_, Pass("new"), Pass("old"), fast_).ok());
    }
  }
  EXPECT_EQ(old_opens + new_opens, 25);
  // Leftover temp files of killed writers do not stop anything.
  EXPECT_TRUE(Opens("old"));
}

}  // namespace
}  // namespace sparetime::ops
