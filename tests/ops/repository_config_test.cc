// One repository-config type (imaging/repository_config.h): the local
// repository and the peer backups' local copy refuse the same configs — an
// unknown format version, a bad zstd level, a bad chunk size, malformed
// JSON, an id function that does not go with the version or is unknown —
// through one serialiser and validator. Real files; the peer backups
// are opened with no live peer (the key is the local copy).
#include <gtest/gtest.h>

#include <cstring>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/chunker.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/imaging/repository_config.h"
#include "sparetime/replication/peer_repository.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::TempDir;

SecretBuffer Passphrase() {
  const std::string_view s = "config test";
  SecretBuffer b(s.size());
  std::memcpy(b.span().data(), s.data(), s.size());
  return b;
}

struct Case {
  const char* name;
  std::string json;  // with FORMAT for the format name
  ErrorCode code;
  const char* says;
};

std::vector<Case> Cases() {
  return {
      {"unknown version",
       R"({"format": "FORMAT", "version": 3, "chunk_size": 1048576, "zstd_level": 3})",
       ErrorCode::kFailedPrecondition, "upgrade sparetime"},
      {"unknown id hash",
       R"({"format": "FORMAT", "version": 2, "chunk_size": 1048576, "zstd_level": 3,
           "id_hash": "sha3-256"})",
       ErrorCode::kFailedPrecondition, "\"sha3-256\", which this sparetime does not know"},
      {"version 2 without its id hash",
       R"({"format": "FORMAT", "version": 2, "chunk_size": 1048576, "zstd_level": 3})",
       ErrorCode::kCorruption, "format version 2 does not go with chunk ids by blake2b"},
      {"HMAC ids in a version 1 config",
       R"({"format": "FORMAT", "version": 1, "chunk_size": 1048576, "zstd_level": 3,
           "id_hash": "hmac-sha256"})",
       ErrorCode::kCorruption, "format version 1 does not go with chunk ids by hmac-sha256"},
      {"id hash not a string",
       R"({"format": "FORMAT", "version": 2, "chunk_size": 1048576, "zstd_level": 3,
           "id_hash": 2})",
       ErrorCode::kCorruption, "is damaged"},
      {"zstd level too high",
       R"({"format": "FORMAT", "version": 1, "chunk_size": 1048576, "zstd_level": 20})",
       ErrorCode::kCorruption, "compression level 20"},
      {"negative zstd level",
       R"({"format": "FORMAT", "version": 1, "chunk_size": 1048576, "zstd_level": -1})",
       ErrorCode::kCorruption, "compression level -1"},
      {"chunk size not a power of two",
       R"({"format": "FORMAT", "version": 1, "chunk_size": 1000000, "zstd_level": 3})",
       ErrorCode::kCorruption, "chunk size 1000000"},
      {"chunk size too small",
       R"({"format": "FORMAT", "version": 1, "chunk_size": 4096, "zstd_level": 3})",
       ErrorCode::kCorruption, "chunk size 4096"},
      {"malformed JSON", R"({"format": "FORMAT", "version": 1, "chunk_size": )",
       ErrorCode::kCorruption, "is damaged"},
      {"missing field", R"({"format": "FORMAT", "version": 1, "zstd_level": 3})",
       ErrorCode::kCorruption, "is damaged"},
      {"other format", R"({"format": "something-else", "version": 1, "chunk_size": 65536,
                          "zstd_level": 3})",
       ErrorCode::kCorruption, "is not a sparetime"},
  };
}

std::string WithFormat(std::string json, const std::string& format) {
  for (size_t at; (at = json.find("FORMAT")) != std::string::npos;) json.replace(at, 6, format);
  return json;
}

TEST(RepositoryConfig, RoundTripsAndFillsTheDefaultAtInit) {
  RepositoryConfig c{.version = 1, .chunk_size = 65536, .zstd_level = 0};
  Result<RepositoryConfig> back =
      RepositoryConfigFromJson(RepositoryConfigToJson(c, "fmt"), "fmt", "x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->version, 1);
  EXPECT_EQ(back->chunk_size, 65536u);
  EXPECT_EQ(back->zstd_level, 0);
  Result<RepositoryConfig> init = ConfigForInit({});
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->chunk_size, kDefaultChunkSize);
  EXPECT_EQ(ConfigForInit({.version = 1, .chunk_size = 0, .zstd_level = 42}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ConfigForInit({.version = 1, .chunk_size = 3, .zstd_level = 3}).status().code(),
            ErrorCode::kInvalidArgument);
}

// The id function is recorded, and picks the version: 1 (what every
// sparetime reads) for BLAKE2b, 2 (refused by a sparetime that predates
// HMAC ids) for HMAC-SHA-256. A config without the field, as sparetime wrote
// it before, is BLAKE2b.
TEST(RepositoryConfig, RecordsTheIdFunctionAndItsVersion) {
  Result<RepositoryConfig> hmac = ConfigForInit({.id_hash = IdHash::kHmacSha256});
  ASSERT_TRUE(hmac.ok()) << hmac.status().ToString();
  EXPECT_EQ(hmac->version, 2);
  const std::string json = RepositoryConfigToJson(*hmac, "fmt");
  EXPECT_EQ(json, "{\n  \"chunk_size\": 1048576,\n  \"format\": \"fmt\",\n  \"id_hash\": "
                  "\"hmac-sha256\",\n  \"version\": 2,\n  \"zstd_level\": 3\n}\n");
  Result<RepositoryConfig> back = RepositoryConfigFromJson(json, "fmt", "x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id_hash, IdHash::kHmacSha256);
  EXPECT_EQ(back->version, 2);

  Result<RepositoryConfig> blake = ConfigForInit({.id_hash = IdHash::kBlake2b});
  ASSERT_TRUE(blake.ok());
  EXPECT_EQ(blake->version, 1);
  Result<RepositoryConfig> old = RepositoryConfigFromJson(
      R"({"format": "fmt", "version": 1, "chunk_size": 65536, "zstd_level": 3})", "fmt", "x");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->id_hash, IdHash::kBlake2b);
  EXPECT_EQ(old->version, 1);
}

TEST(RepositoryConfig, TheLocalRepositoryRefusesEachBadConfig) {
  for (const Case& c : Cases()) {
    TempDir dir;
    const std::string repo = dir / "repo";
    ASSERT_TRUE(Repository::Init(repo, Passphrase(), {.version = 1, .chunk_size = 65536,
                                                      .zstd_level = 3},
                                 KdfLimits::FastForTests())
                    .ok());
    ASSERT_TRUE(Repository::Open(repo, Passphrase()).ok());
    ASSERT_TRUE(
        WriteFileAtomic(repo + "/config.json", WithFormat(c.json, "sparetime-repository"), 0600)
            .ok());
    Result<std::unique_ptr<Repository>> opened = Repository::Open(repo, Passphrase());
    ASSERT_FALSE(opened.ok()) << c.name;
    EXPECT_EQ(opened.status().code(), c.code) << c.name << ": " << opened.status().ToString();
    EXPECT_NE(opened.status().message().find(c.says), std::string::npos)
        << c.name << ": " << opened.status().message();
    EXPECT_NE(opened.status().message().find("config.json"), std::string::npos) << c.name;
  }
}

TEST(RepositoryConfig, ThePeerBackupsRefuseEachBadConfigAlike) {
  for (const Case& c : Cases()) {
    TempDir dir;
    const std::string backup = dir / "state/backup";
    ASSERT_TRUE(MakeDirs(backup, 0700).ok());
    SecretBuffer master = NewMasterKey();
    Result<WrappedKey> wrapped = WrapMasterKey(master, Passphrase(), KdfLimits::FastForTests());
    ASSERT_TRUE(wrapped.ok());
    ASSERT_TRUE(WriteFileAtomic(backup + "/key", wrapped->ToJson(), 0600).ok());
    ASSERT_TRUE(
        WriteFileAtomic(backup + "/config.json", WithFormat(c.json, "sparetime-peer-backup"), 0600)
            .ok());
    replication::PeerRepositoryOptions o;
    o.state_dir = dir / "state";
    o.self_name = "alpha";
    Result<std::unique_ptr<replication::PeerRepository>> opened =
        replication::PeerRepository::Open(o, Passphrase());
    ASSERT_FALSE(opened.ok()) << c.name;
    EXPECT_EQ(opened.status().code(), c.code) << c.name << ": " << opened.status().ToString();
    EXPECT_NE(opened.status().message().find(c.says), std::string::npos)
        << c.name << ": " << opened.status().message();
    // Refused, never rewritten from the peers' roots.
    Result<std::string> text = ReadFileToString(backup + "/config.json");
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, WithFormat(c.json, "sparetime-peer-backup")) << c.name;
  }
}

}  // namespace
}  // namespace sparetime
