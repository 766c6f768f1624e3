// Keys tests: the documented vectors (docs/formats.md, "Keys"), wrapping
// round trips and failures, the key-file JSON, and reading the passphrase.
#include "sparetime/imaging/keys.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "imaging/keys_testing.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::Hex;
using testing::VectorMaster;
using testing::kVectorKeyFile;
using testing::Secret;

TEST(KeysVectors, Subkeys) {
  auto keys = KeySet::Derive(VectorMaster());
  EXPECT_EQ(Hex(keys->id_key()),
            "46c03483d5b8613fcc73578671190d5bd05ce0fb541ba6f3213dac8018f13452");
  EXPECT_EQ(Hex(keys->chunk_key()),
            "255c7fc107a4a10e47d92c4c7c6e4697f928ec0024df8a1d1cb20d5dbe1889af");
  EXPECT_EQ(Hex(keys->manifest_key()),
            "f62f8ef1c7486c99db9a654b53e756a7ef6872e0b6e8cda10ba902b60cb9b9aa");
}

TEST(KeysVectors, UnwrapsTheDocumentedKeyFile) {
  auto wrapped = WrappedKey::FromJson(kVectorKeyFile);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  EXPECT_EQ(wrapped->ToJson(), kVectorKeyFile);  // the exact serialisation, too
  auto master = UnwrapMasterKey(*wrapped, Secret("correct horse battery staple"));
  ASSERT_TRUE(master.ok()) << master.status().ToString();
  EXPECT_EQ(Hex(*master), Hex(VectorMaster()));
}

TEST(Keys, KdfLimitsAreLibsodiumsArgon2id) {
  EXPECT_EQ(KdfLimits::Moderate().opslimit, 3u);
  EXPECT_EQ(KdfLimits::Moderate().memlimit, 256u << 20);
  EXPECT_EQ(KdfLimits::Interactive().opslimit, 2u);
  EXPECT_EQ(KdfLimits::Interactive().memlimit, 64u << 20);
  EXPECT_EQ(KdfLimits::FastForTests().opslimit, 1u);
  EXPECT_EQ(KdfLimits::FastForTests().memlimit, 8192u);
}

TEST(Keys, NewMasterKeysAreRandom) {
  SecretBuffer a = NewMasterKey(), b = NewMasterKey();
  EXPECT_EQ(a.size(), KeySet::kKeySize);
  EXPECT_NE(Hex(a), Hex(b));
}

TEST(Keys, SubkeysAreDistinct) {
  auto keys = KeySet::Derive(NewMasterKey());
  EXPECT_NE(Hex(keys->id_key()), Hex(keys->chunk_key()));
  EXPECT_NE(Hex(keys->chunk_key()), Hex(keys->manifest_key()));
  EXPECT_NE(Hex(keys->id_key()), Hex(keys->manifest_key()));
}

TEST(Keys, WrapUnwrapRoundTripThroughJson) {
  SecretBuffer master = NewMasterKey();
  auto pass = Secret("a passphrase");
  auto w = WrapMasterKey(master, pass, KdfLimits::FastForTests());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto w2 = WrapMasterKey(master, pass, KdfLimits::FastForTests());
  ASSERT_TRUE(w2.ok());
  EXPECT_NE(w->salt, w2->salt);  // fresh salt and nonce each time
  EXPECT_NE(w->nonce, w2->nonce);

  auto parsed = WrappedKey::FromJson(w->ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto unwrapped = UnwrapMasterKey(*parsed, pass);
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status().ToString();
  EXPECT_EQ(Hex(*unwrapped), Hex(master));
}

TEST(Keys, WrongPassphraseIsAuthFailed) {
  auto w = WrappedKey::FromJson(kVectorKeyFile).value();
  for (std::string_view pass :
       {"correct horse battery stapl", "Correct horse battery staple", ""}) {
    auto r = UnwrapMasterKey(w, Secret(pass));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kAuthFailed);
    EXPECT_NE(r.status().message().find("wrong passphrase"), std::string::npos);
  }
}

TEST(Keys, AlteredHeaderOrCiphertextFailsAuthentication) {
  const auto original = WrappedKey::FromJson(kVectorKeyFile).value();
  auto pass = Secret("correct horse battery staple");
  auto expect_auth_failed = [&](const WrappedKey& w) {
    auto r = UnwrapMasterKey(w, pass);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kAuthFailed) << r.status().ToString();
  };
  // Cost parameters are in the AD: a weakened (or strengthened) cost fails.
  auto w = original;
  w.opslimit = 2;
  expect_auth_failed(w);
  w = original;
  w.memlimit = 16384;
  expect_auth_failed(w);
  for (size_t i = 0; i < original.salt.size(); ++i) {
    w = original;
    w.salt[i] ^= std::byte{1};
    expect_auth_failed(w);
  }
  for (size_t i = 0; i < original.nonce.size(); ++i) {
    w = original;
    w.nonce[i] ^= std::byte{1};
    expect_auth_failed(w);
  }
  for (size_t i = 0; i < original.ciphertext.size(); ++i) {
    w = original;
    w.ciphertext[i] ^= std::byte{0x80};
    expect_auth_failed(w);
  }
}

TEST(Keys, TamperedOpslimitInJsonFails) {
  std::string json(kVectorKeyFile);
  json.replace(json.find("\"opslimit\": 1"), 13, "\"opslimit\": 2");
  auto w = WrappedKey::FromJson(json);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto r = UnwrapMasterKey(*w, Secret("correct horse battery staple"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kAuthFailed);
}

// Replaces the first `"field": value` in the vector key file.
std::string WithField(std::string_view field, std::string_view value) {
  auto j = std::string(kVectorKeyFile);
  size_t start = j.find("\"" + std::string(field) + "\"");
  size_t end = j.find_first_of(",\n", j.find(':', start));
  return j.replace(start, end - start, "\"" + std::string(field) + "\": " + std::string(value));
}

std::string WithoutField(std::string_view field) {
  auto j = std::string(kVectorKeyFile);
  size_t start = j.rfind('\n', j.find("\"" + std::string(field) + "\"")) + 1;
  size_t end = j.find('\n', start);
  j.erase(start, end - start + 1);
  // Dropping the last field leaves a trailing comma; drop it too.
  size_t comma = j.rfind(",\n}");
  if (comma != std::string::npos) j.erase(comma, 1);
  return j;
}

void ExpectCorruptionNaming(const std::string& json, std::string_view needle) {
  SCOPED_TRACE(json);
  auto w = WrappedKey::FromJson(json);
  ASSERT_FALSE(w.ok()) << json;
  EXPECT_EQ(w.status().code(), ErrorCode::kCorruption) << w.status().ToString();
  EXPECT_NE(w.status().message().find(needle), std::string::npos) << w.status().ToString();
}

TEST(Keys, MalformedKeyFilesAreCorruption) {
  ExpectCorruptionNaming("", "not valid JSON");
  ExpectCorruptionNaming("{\"version\": 1", "not valid JSON");
  ExpectCorruptionNaming("[1, 2]", "not a JSON object");
  for (const char* field :
       {"version", "kdf", "opslimit", "memlimit", "salt", "nonce", "ciphertext"}) {
    ExpectCorruptionNaming(WithoutField(field), std::string("no \"") + field + "\" field");
  }
  ExpectCorruptionNaming(WithField("version", "2"), "\"version\"");
  ExpectCorruptionNaming(WithField("version", "\"1\""), "\"version\" is not an unsigned integer");
  ExpectCorruptionNaming(WithField("kdf", "\"scrypt\""), "\"kdf\"");
  ExpectCorruptionNaming(WithField("opslimit", "-1"), "\"opslimit\" is not an unsigned integer");
  ExpectCorruptionNaming(WithField("memlimit", "1.5"), "\"memlimit\" is not an unsigned integer");
  ExpectCorruptionNaming(WithField("salt", "\"zz\""), "\"salt\" is not a hex string");
  ExpectCorruptionNaming(WithField("salt", "\"6061\""), "\"salt\" has 2 bytes, expected 16");
  ExpectCorruptionNaming(WithField("nonce", "12"), "\"nonce\" is not a hex string");
  ExpectCorruptionNaming(WithField("ciphertext", "\"00\""),
                         "\"ciphertext\" has 1 bytes, expected 48");
}

TEST(Keys, UnreasonableCostIsRejectedBeforeArgon2Runs) {
  // 1 TiB of memory or a million passes would be a denial of service.
  ExpectCorruptionNaming(WithField("memlimit", "1099511627776"), "memlimit 1099511627776");
  ExpectCorruptionNaming(WithField("memlimit", "4294967297"), "memlimit");
  ExpectCorruptionNaming(WithField("memlimit", "1024"), "memlimit");
  ExpectCorruptionNaming(WithField("opslimit", "1000000"), "opslimit 1000000");
  ExpectCorruptionNaming(WithField("opslimit", "0"), "opslimit 0");
  // The same checks guard a WrappedKey built in memory.
  auto w = WrappedKey::FromJson(kVectorKeyFile).value();
  w.memlimit = uint64_t{1} << 40;
  auto r = UnwrapMasterKey(w, Secret("correct horse battery staple"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  w = WrappedKey::FromJson(kVectorKeyFile).value();
  w.salt.pop_back();
  r = UnwrapMasterKey(w, Secret("correct horse battery staple"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
}

TEST(Keys, WrapRejectsBadArguments) {
  auto pass = Secret("pass");
  auto r = WrapMasterKey(SecretBuffer(16), pass, KdfLimits::FastForTests());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  r = WrapMasterKey(NewMasterKey(), SecretBuffer(), KdfLimits::FastForTests());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  r = WrapMasterKey(NewMasterKey(), pass, {1, uint64_t{8} << 30});
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

// Sets or clears SPARETIME_PASSPHRASE for one test, restoring it afterwards.
class PassphraseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = getenv("SPARETIME_PASSPHRASE")) saved_ = v;
    unsetenv("SPARETIME_PASSPHRASE");
  }
  void TearDown() override {
    if (saved_)
      setenv("SPARETIME_PASSPHRASE", saved_->c_str(), 1);
    else
      unsetenv("SPARETIME_PASSPHRASE");
  }
  std::string WriteFile(const std::string& contents, mode_t mode) {
    std::string path = dir_ / "pass";
    EXPECT_TRUE(WriteFileAtomic(path, contents, mode).ok());
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string Read(const std::optional<std::string>& file) {
    auto r = ReadPassphrase(file);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::string(reinterpret_cast<const char*>(r->data()), r->size()) : "";
  }
  testing::TempDir dir_;
  std::optional<std::string> saved_;
};

TEST_F(PassphraseTest, FromFileDropsOneTrailingNewline) {
  EXPECT_EQ(Read(WriteFile("secret words", 0600)), "secret words");
  EXPECT_EQ(Read(WriteFile("secret words\n", 0600)), "secret words");
  EXPECT_EQ(Read(WriteFile("secret words\r\n", 0400)), "secret words");
  EXPECT_EQ(Read(WriteFile("secret words\n\n", 0600)), "secret words\n");
  EXPECT_EQ(Read(WriteFile(" spaces kept \t", 0600)), " spaces kept \t");
}

TEST_F(PassphraseTest, FileTakesPrecedenceOverEnvironment) {
  setenv("SPARETIME_PASSPHRASE", "from env", 1);
  EXPECT_EQ(Read(WriteFile("from file\n", 0600)), "from file");
  EXPECT_EQ(Read(std::nullopt), "from env");
}

TEST_F(PassphraseTest, RefusesFilesOthersCanRead) {
  for (mode_t mode : {0640, 0604, 0644}) {
    std::string path = WriteFile("secret\n", mode);
    auto r = ReadPassphrase(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("chmod 600 " + path), std::string::npos)
        << r.status().ToString();
  }
}

TEST_F(PassphraseTest, MissingOrEmptyTellsWhatToDo) {
  auto r = ReadPassphrase(std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("SPARETIME_PASSPHRASE"), std::string::npos);
  EXPECT_NE(r.status().message().find("--passphrase-file"), std::string::npos);

  setenv("SPARETIME_PASSPHRASE", "", 1);
  r = ReadPassphrase(std::nullopt);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);

  for (const char* contents : {"", "\n", "\r\n"}) {
    r = ReadPassphrase(WriteFile(contents, 0600));
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  }
  r = ReadPassphrase(dir_ / "no-such-file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no-such-file"), std::string::npos);
}

TEST_F(PassphraseTest, RefusesHugeFiles) {
  auto r = ReadPassphrase(WriteFile(std::string(5000, 'x'), 0600));
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Read(WriteFile(std::string(4096, 'x'), 0600)).size(), 4096u);
  EXPECT_EQ(Read(WriteFile(std::string(4095, 'x') + "\n", 0600)).size(), 4095u);
}

}  // namespace
}  // namespace sparetime
