// Key cache tests: UnlockMasterKey's use of a cache (an in-memory KeyCache
// that records what is asked and kept; the entry vector of docs/formats.md,
// "Key cache", cross-checked with Python hashlib.blake2b), and the real
// kernel keyring behind KernelKeyCache.
#include "sparetime/imaging/key_cache.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "sparetime/base/bytes.h"
#include "imaging/keys_testing.h"
#include "sparetime/imaging/keys.h"

namespace sparetime {
namespace {

using testing::Hex;
using testing::kVectorKeyFile;
using testing::kVectorPassphrase;
using testing::Secret;

// Remembers entries in memory and counts what UnlockMasterKey asks for.
class MemoryKeyCache : public KeyCache {
 public:
  std::optional<SecretBuffer> Find(const std::string& name) const override {
    ++finds;
    auto it = entries.find(name);
    if (it == entries.end()) return std::nullopt;
    return it->second.Clone();
  }
  void Keep(const std::string& name, const SecretBuffer& payload) const override {
    ++keeps;
    entries[name] = payload.Clone();
  }
  mutable std::map<std::string, SecretBuffer> entries;
  mutable int finds = 0, keeps = 0;
};

class KeyCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto().ok());
    auto w = WrappedKey::FromJson(kVectorKeyFile);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    wrapped_ = *w;
  }
  WrappedKey wrapped_;
  MemoryKeyCache cache_;
};

TEST_F(KeyCacheTest, EntryVector) {
  auto master = UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_);
  ASSERT_TRUE(master.ok()) << master.status().ToString();
  ASSERT_EQ(cache_.entries.size(), 1u);
  const auto& [name, payload] = *cache_.entries.begin();
  EXPECT_EQ(name, "2cd2273cb7afeedb9b00253f71e58c50");
  EXPECT_EQ(Hex(payload),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "11af6ad67d33d685baa488715512005ef97eb6753758b549dbdc4e5eeecc1839");
}

TEST_F(KeyCacheTest, SecondUnlockComesFromTheCache) {
  auto first = UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(cache_.keeps, 1);  // a miss, then Argon2id, then kept
  auto second = UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(cache_.finds, 2);
  EXPECT_EQ(cache_.keeps, 1);  // a hit keeps nothing: Argon2id did not run
  EXPECT_EQ(Hex(*second), Hex(*first));
}

TEST_F(KeyCacheTest, WrongPassphraseIsRefusedEvenWhenWarm) {
  ASSERT_TRUE(UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_).ok());
  const std::string before = Hex(cache_.entries.begin()->second);
  auto wrong = UnlockMasterKey(wrapped_, Secret("Correct horse battery staple"), &cache_);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kAuthFailed);
  EXPECT_EQ(cache_.keeps, 1);
  EXPECT_EQ(Hex(cache_.entries.begin()->second), before);
}

TEST_F(KeyCacheTest, DamagedOrForeignEntriesAreMissesNotKeys) {
  ASSERT_TRUE(UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_).ok());
  SecretBuffer& entry = cache_.entries.begin()->second;
  const std::string good = Hex(entry);
  // A flipped tag bit; then another master key with the old tag; then a short entry.
  for (size_t flip : {size_t{40}, size_t{3}}) {
    entry.data()[flip] ^= std::byte{1};
    auto master = UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_);
    ASSERT_TRUE(master.ok());
    EXPECT_EQ(Hex(*master).substr(0, 8), "00010203");  // from Argon2id, not the entry
    EXPECT_EQ(Hex(cache_.entries.begin()->second), good);  // and the entry is rewritten
  }
  cache_.entries.begin()->second = SecretBuffer(32);
  ASSERT_TRUE(UnlockMasterKey(wrapped_, Secret(kVectorPassphrase), &cache_).ok());
  EXPECT_EQ(Hex(cache_.entries.begin()->second), good);
  EXPECT_EQ(cache_.keeps, 4);
}

TEST_F(KeyCacheTest, EachKeyFileHasItsOwnEntry) {
  SecretBuffer master = NewMasterKey();
  auto a = WrapMasterKey(master, Secret("pass"), KdfLimits::FastForTests());
  auto b = WrapMasterKey(master, Secret("pass"), KdfLimits::FastForTests());
  ASSERT_TRUE(a.ok() && b.ok());
  KeepUnlockedKey(*a, Secret("pass"), master, &cache_);
  KeepUnlockedKey(*b, Secret("pass"), master, &cache_);
  EXPECT_EQ(cache_.entries.size(), 2u);
}

TEST(ProcessKeyCache, KeepsEntriesForItsLifeAndServesUnlock) {
  ASSERT_TRUE(InitCrypto().ok());
  auto cache = ProcessKeyCache();
  EXPECT_FALSE(cache->Find("a"));
  cache->Keep("a", Secret("first"));
  cache->Keep("a", Secret("second"));
  cache->Keep("b", Secret("other"));
  auto a = cache->Find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(Hex(*a), Hex(Secret("second")));

  auto wrapped = WrappedKey::FromJson(kVectorKeyFile);
  ASSERT_TRUE(wrapped.ok());
  auto first = UnlockMasterKey(*wrapped, Secret(kVectorPassphrase), cache.get());
  ASSERT_TRUE(first.ok());
  // The entry UnlockMasterKey kept is the documented one (EntryVector).
  auto entry = cache->Find("2cd2273cb7afeedb9b00253f71e58c50");
  ASSERT_TRUE(entry);
  EXPECT_EQ(Hex(*entry).substr(64),
            "11af6ad67d33d685baa488715512005ef97eb6753758b549dbdc4e5eeecc1839");
  auto wrong = UnlockMasterKey(*wrapped, Secret("not it"), cache.get());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kAuthFailed);
}

// The real keyring. Names are random so parallel tests never share entries.
std::string RandomName() {
  unsigned char r[8];
  randombytes_buf(r, sizeof r);
  return "test-" + ToHex(std::span<const std::byte>(reinterpret_cast<std::byte*>(r), sizeof r));
}

// The /proc/keys line of our entry `name`, or "".
std::string ProcKeysLine(const std::string& name) {
  std::ifstream in("/proc/keys");
  for (std::string line; std::getline(in, line);) {
    if (line.find("sparetime:" + name + ":") != std::string::npos) return line;
  }
  return "";
}

TEST(KernelKeyCache, KeepsFindsExpiresAndForgets) {
  ASSERT_TRUE(InitCrypto().ok());
  auto cache = KernelKeyCache(std::chrono::seconds(300));
  const std::string name = RandomName();
  EXPECT_FALSE(cache->Find(name));
  SecretBuffer payload = Secret("0123456789abcdef0123456789abcdef-and-a-tag-of-32-bytes");
  cache->Keep(name, payload);
  auto found = cache->Find(name);
  ASSERT_TRUE(found) << "the kernel keyring refused the key (keyctl blocked?)";
  EXPECT_EQ(Hex(*found), Hex(payload));
  // Owner-only permissions (possessor and user: view read write search
  // setattr; group and other: nothing) and an expiry.
  std::string line = ProcKeysLine(name);
  EXPECT_NE(line.find(" 2f2f0000 "), std::string::npos) << line;
  EXPECT_EQ(line.find(" perm "), std::string::npos) << "no expiry: " << line;

  Result<int> forgotten = ForgetKernelCachedKeys();
  ASSERT_TRUE(forgotten.ok()) << forgotten.status().ToString();
  EXPECT_GE(*forgotten, 1);
  EXPECT_FALSE(cache->Find(name));

  auto short_lived = KernelKeyCache(std::chrono::seconds(1));
  short_lived->Keep(name, payload);
  EXPECT_TRUE(short_lived->Find(name));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_FALSE(short_lived->Find(name));

  auto never = KernelKeyCache(std::chrono::seconds(0));
  const std::string other = RandomName();
  never->Keep(other, payload);
  EXPECT_FALSE(cache->Find(other));
}

}  // namespace
}  // namespace sparetime
