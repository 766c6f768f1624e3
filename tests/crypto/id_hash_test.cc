// ChunkIdFunction (crypto/id_hash.h): HMAC-SHA-256 against all seven
// RFC 4231 test cases (case 5 is truncated to 128 bits by the RFC: its first
// 16 bytes are compared), keyed BLAKE2b against libsodium called directly,
// context reuse (the same input twice, many inputs on many threads at once
// give the single-threaded answers), and the names `init --id-hash` takes.
#include "sparetime/crypto/id_hash.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "sparetime/base/bytes.h"

namespace sparetime {
namespace {

SecretBuffer Key(const std::string& bytes) {
  SecretBuffer k(bytes.size());
  std::memcpy(k.data(), bytes.data(), bytes.size());
  return k;
}

std::span<const std::byte> Bytes(const std::string& s) { return std::as_bytes(std::span(s)); }

class IdHashTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitCrypto().ok()); }
};

struct Rfc4231Case {
  std::string key, data, hmac_sha256;
};

// RFC 4231 section 4, HMAC-SHA-256 lines.
std::vector<Rfc4231Case> Rfc4231() {
  const std::string aa131(131, '\xaa');
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(static_cast<char>(i));
  return {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {key4, std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {std::string(20, '\x0c'), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
      {aa131, "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {aa131,
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}

TEST_F(IdHashTest, HmacSha256MatchesRfc4231) {
  int n = 0;
  for (const Rfc4231Case& c : Rfc4231()) {
    SCOPED_TRACE("RFC 4231 case " + std::to_string(++n));
    ChunkIdFunction f(IdHash::kHmacSha256, Key(c.key));
    const std::string hex = f.Compute(Bytes(c.data)).hex();
    EXPECT_EQ(hex.substr(0, c.hmac_sha256.size()), c.hmac_sha256);
    // A context from the pool, used again: the same answer.
    EXPECT_EQ(f.Compute(Bytes(c.data)).hex(), hex);
  }
  EXPECT_EQ(n, 7);
}

TEST_F(IdHashTest, Blake2bIsKeyedGenerichash) {
  const std::string key(32, '\x42'), data = "sparetime";
  ChunkIdFunction f(IdHash::kBlake2b, Key(key));
  unsigned char want[32];
  crypto_generichash(want, sizeof want, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size(), reinterpret_cast<const unsigned char*>(key.data()), key.size());
  EXPECT_EQ(f.Compute(Bytes(data)).hex(), ToHex(std::as_bytes(std::span(want))));
  EXPECT_EQ(f.hash(), IdHash::kBlake2b);
}

TEST_F(IdHashTest, TheTwoFunctionsDifferUnderOneKey) {
  const SecretBuffer key = Key(std::string(32, '\x01'));
  ChunkIdFunction hmac(IdHash::kHmacSha256, key), blake(IdHash::kBlake2b, key);
  EXPECT_NE(hmac.Compute(Bytes("x")), blake.Compute(Bytes("x")));
  // The empty input is a valid chunk and not the hole id.
  EXPECT_FALSE(hmac.Compute({}).is_hole());
}

TEST_F(IdHashTest, ConcurrentCallersGetTheSingleThreadedIds) {
  ChunkIdFunction f(IdHash::kHmacSha256, Key(std::string(32, '\x07')));
  constexpr int kInputs = 300, kThreads = 4;
  std::vector<std::string> inputs;
  std::vector<ChunkId> want;
  for (int i = 0; i < kInputs; ++i) {
    inputs.push_back(std::string(static_cast<size_t>(i) * 97, static_cast<char>(i)));
    want.push_back(f.Compute(Bytes(inputs.back())));
  }
  std::vector<std::vector<ChunkId>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kInputs; ++i) got[t].push_back(f.Compute(Bytes(inputs[(i + t) % kInputs])));
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(got[t].size(), static_cast<size_t>(kInputs));
    for (int i = 0; i < kInputs; ++i) EXPECT_EQ(got[t][i], want[(i + t) % kInputs]) << t << " " << i;
  }
}

TEST_F(IdHashTest, NamesRoundTripAndAutoFollowsTheCpu) {
  EXPECT_EQ(IdHashName(IdHash::kBlake2b), "blake2b");
  EXPECT_EQ(IdHashName(IdHash::kHmacSha256), "hmac-sha256");
  EXPECT_EQ(ParseIdHash("blake2b"), IdHash::kBlake2b);
  EXPECT_EQ(ParseIdHash("hmac-sha256"), IdHash::kHmacSha256);
  EXPECT_EQ(ParseIdHash("auto"), std::nullopt);
  EXPECT_EQ(ParseIdHash("sha256"), std::nullopt);
  EXPECT_EQ(ParseIdHash(""), std::nullopt);
  EXPECT_EQ(AutoIdHash(), CpuHasShaExtensions() ? IdHash::kHmacSha256 : IdHash::kBlake2b);
}

#if defined(__x86_64__)
// CPUID's answer agrees with the kernel's: the "sha_ni" flag in /proc/cpuinfo.
TEST_F(IdHashTest, CpuidAgreesWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  bool flag = false, seen = false;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    seen = true;
    flag = (line + " ").find(" sha_ni ") != std::string::npos;
    break;
  }
  ASSERT_TRUE(seen) << "no flags line in /proc/cpuinfo";
  EXPECT_EQ(CpuHasShaExtensions(), flag);
}
#endif

}  // namespace
}  // namespace sparetime
