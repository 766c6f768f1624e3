// Writes the seed corpora (corpus/NAME/) from the real encoders, so every
// seed is a file sparetime itself writes: a repository config, a status
// file, a key file, a pack with three records, index rows, a manifest root
// with its piece, a snapshot list, a migration image, protocol messages.
// Text formats an admin writes (LDIF, sparetime.conf) are conf/'s files,
// copied into corpus/ldif and corpus/config as they are. Usage: make_seeds OUT_DIR (then commit the small
// files it writes).
#include <cstdio>
#include <fstream>
#include <map>

#include "fuzz_util.h"
#include "pack_file.h"
#include "roots.h"
#include "sparetime/base/bytes.h"
#include "sparetime/config/status_file.h"
#include "sparetime/directory/fleet_state.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/repository_config.h"
#include "sparetime/migration/image.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/privsep/protocol.h"
#include "sparetime/transport/messages.h"

using namespace sparetime;

namespace {

std::string out_dir;

void Write(const std::string& target, const std::string& name, std::string_view bytes) {
  std::string dir = out_dir + "/" + target;
  if (!MakeDirs(dir).ok()) std::abort();
  std::ofstream(dir + "/" + name, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
void Write(const std::string& target, const std::string& name, std::span<const std::byte> bytes) {
  Write(target, name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

ChunkId Id(int i) {
  ChunkId id;
  for (size_t b = 0; b < id.bytes.size(); ++b) id.bytes[b] = std::byte((i * 31 + b) & 0xff);
  return id;
}

class Capture : public ChunkSink {
 public:
  Result<bool> Contains(const ChunkId& id) override { return blobs.count(id) != 0; }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override {
    blobs[id].assign(sealed.begin(), sealed.end());
    return false;
  }
  Status Flush() override { return Status::Ok(); }
  std::map<ChunkId, std::vector<std::byte>> blobs;
};

std::vector<std::byte> Plain(const ChunkId& id, const std::vector<std::byte>& sealed) {
  auto p = fuzz::FixedCodec().Open(BlobKind::kManifest, id, sealed, 16 << 20);
  if (!p.ok()) std::abort();
  return *p;
}

DeviceIdentity Device() {
  DeviceIdentity d;
  d.path = "/dev/loop3";
  d.kind = "block";
  d.size = 3 << 20;
  d.backing_file = "/tmp/disk.img";
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  out_dir = argv[1];

  RepositoryConfig rc;
  rc.chunk_size = 1 << 20;
  Write("repository_config", "config.json", RepositoryConfigToJson(rc, "sparetime-repository"));

  config::AgentStatus st;
  st.agent = "alpha";
  st.pid = 4242;
  st.started = 1760000000;
  st.updated = 1760000060;
  st.directory_source = "ldap://ldap.example.org";
  st.directory_warnings = {"policy cn=x: unknown attribute"};
  st.registered = true;
  st.peers = {"beta", "gamma"};
  st.policy_applied = {"cn=default,ou=policies,ou=sparetime,dc=example,dc=org"};
  st.idle.known = true;
  st.idle.idle = true;
  st.idle.reasons = {"load 0.1 < 0.5"};
  st.jobs.push_back({"backup /dev/sda", "running", 1760000010, 1 << 20, 8 << 20, 1, ""});
  std::string status_path = fuzz::ScratchDir() + "/status.json";
  if (!config::WriteStatus(status_path, st).ok()) std::abort();
  auto status_text = ReadFileToString(status_path);
  if (!status_text.ok()) std::abort();
  Write("status", "status.json", *status_text);
  // sparetimeBackupState / sparetimeBackupHealth values (directory/fleet_state.h).
  Write("fleet_state", "device.json",
        directory::EncodeDeviceState([] {
          directory::DeviceBackupState d;
          d.device = "/dev/vdb";
          d.time = 1765142000;
          d.size = 1 << 30;
          d.snapshot = "3f9a0c11";
          d.seconds = 12;
          d.stored = 4096;
          d.forced = true;
          return d;
        }()));
  Write("fleet_state", "health.json",
        directory::EncodeBackupHealth([] {
          directory::BackupHealth h;
          h.replicas = 2;
          h.healthy = 1200;
          h.under_replicated = 3;
          h.last_verify = 1765000000;
          h.last_error = "backup: x";
          h.last_error_time = 1765100000;
          return h;
        }()));

  SecretBuffer master = NewMasterKey();
  SecretBuffer pass(4);
  std::memcpy(pass.data(), "pass", 4);
  auto wrapped = WrapMasterKey(master, pass, KdfLimits::FastForTests());
  if (!wrapped.ok()) std::abort();
  Write("wrapped_key", "key.json", wrapped->ToJson());

  // A pack: header and three records; the claimed location is the second.
  std::vector<std::byte> pack;
  auto header = EncodePackHeader();
  pack.insert(pack.end(), header.begin(), header.end());
  uint64_t second = 0;
  uint32_t second_len = 0;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::byte> blob(40 + i * 30, std::byte(0x30 + i));
    if (i == 1) second = pack.size(), second_len = static_cast<uint32_t>(blob.size());
    auto rec = EncodeRecord(Id(i), blob);
    pack.insert(pack.end(), rec.begin(), rec.end());
  }
  std::vector<std::byte> pack_seed;
  AppendLe64(pack_seed, second);
  AppendLe32(pack_seed, second_len);
  pack_seed.insert(pack_seed.end(), pack.begin(), pack.end());
  Write("pack_file", "three-records", pack_seed);

  // Index rows: two packs and three chunks, as the store writes them.
  std::vector<std::byte> rows;
  for (int p = 1; p <= 2; ++p) {
    rows.push_back(std::byte(1));
    AppendLe64(rows, p);
    std::string name = "packs/0" + std::to_string(p) + "/0000000" + std::to_string(p) + ".pack";
    rows.push_back(std::byte(name.size()));
    AppendBytes(rows, std::as_bytes(std::span(name)));
    AppendLe64(rows, 4096);
  }
  for (int i = 0; i < 3; ++i) {
    rows.push_back(std::byte(0));
    rows.push_back(std::byte(32));
    AppendBytes(rows, Id(i).bytes);
    AppendLe64(rows, 1 + i % 2);
    AppendLe64(rows, 20 + 100 * i);
    AppendLe64(rows, 60);
    rows.push_back(std::byte(32));
    AppendBytes(rows, Id(100 + i).bytes);
  }
  Write("pack_index", "rows", rows);

  // A manifest of three chunks (one a hole): root, then its one piece.
  Manifest m;
  m.device = Device();
  m.size = 3 << 20;
  m.chunk_size = 1 << 20;
  m.chunks = {Id(1), ChunkId{}, Id(2)};
  Capture sink;
  auto root = StoreManifest(m, fuzz::FixedCodec(), sink);
  if (!root.ok()) std::abort();
  std::vector<std::byte> manifest_seed = Plain(*root, sink.blobs[*root]);
  for (const auto& [id, sealed] : sink.blobs) {
    if (id == *root) continue;
    AppendBytes(manifest_seed, std::as_bytes(std::span("|PIECE|", 7)));
    auto piece = Plain(id, sealed);
    manifest_seed.insert(manifest_seed.end(), piece.begin(), piece.end());
  }
  Write("manifest", "three-chunks", manifest_seed);

  // A snapshot list: its JSON (even first byte) and the sealed blob (odd).
  replication::Roots roots;
  roots.owner = "alpha";
  roots.generation = 3;
  roots.config = rc;
  Snapshot snap;
  snap.id = "3f9a0c1d";
  snap.label = "nightly";
  snap.time = 1760000000;
  snap.device = Device();
  snap.size = m.size;
  snap.chunk_size = m.chunk_size;
  snap.manifest_root = *root;
  roots.snapshots = {snap};
  std::vector<std::byte> blob = replication::SealRoots(roots, fuzz::FixedCodec());
  ChunkId roots_id = ChunkId::FromBytes(std::span<const std::byte, 32>(blob.data(), 32));
  std::vector<std::byte> json_seed{std::byte(0)};
  auto json = Plain(roots_id, std::vector<std::byte>(blob.begin() + 32, blob.end()));
  json_seed.insert(json_seed.end(), json.begin(), json.end());
  Write("roots", "json", json_seed);
  std::vector<std::byte> blob_seed{std::byte(1)};
  blob_seed.insert(blob_seed.end(), blob.begin(), blob.end());
  Write("roots", "sealed", blob_seed);

  // A migration image: a process of one anonymous mapping of two pages.
  migration::ProcessImage image;
  image.page_count = 0;
  auto manifest = migration::EncodeManifest(image);
  if (!manifest.ok()) {
    std::fprintf(stderr, "EncodeManifest: %s\n", manifest.status().ToString().c_str());
    return 1;
  }
  migration::StoredImage stored;
  stored.manifest = *manifest;
  stored.key_check = Id(7);
  Write("migration_image", "empty-process", migration::EncodeStoredImage(stored));
  Write("migration_image", "manifest.json", *manifest);

  // Protocol: messages (selector 0) as a peer sends them.
  using namespace transport;
  int n = 0;
  auto message = [&](MessageBody body) {
    auto enc = EncodeMessage(Message{static_cast<uint32_t>(n + 1), std::move(body)});
    if (!enc.ok()) std::abort();
    std::vector<std::byte> seed{std::byte(0)};
    seed.insert(seed.end(), enc->begin(), enc->end());
    Write("transport", "message-" + std::to_string(n++), seed);
  };
  message(HasChunksRequest{"alpha", {Id(1), Id(2)}});
  PutChunksRequest put;
  put.chunks.push_back({Id(3), std::vector<std::byte>(50, std::byte(7))});
  message(std::move(put));
  message(GetRootsRequest{"alpha"});
  message(RootsReply{3, std::vector<std::byte>(40, std::byte(9))});
  message(ErrorReply{Status(ErrorCode::kNotFound, "chunk not held")});
  message(HoldSnapshotRequest{"alpha", "3f9a", 120});
  message(ListChunksRequest{"alpha", true, ChunkId{}});
  message(CaretakerPutChunksRequest{"alpha", {{ChunkId{}, std::vector<std::byte>(24, std::byte(3))}}});

  // privsep: a request (selector 0) and replies (selector 1) as sparetimed
  // and its helper send them.
  auto privsep_seed = [](uint8_t selector, const std::vector<std::byte>& body) {
    std::vector<std::byte> seed{std::byte(selector)};
    seed.insert(seed.end(), body.begin(), body.end());
    return seed;
  };
  Write("privsep", "open-device",
        privsep_seed(0, privsep::EncodeRequest({privsep::Command::kOpenDeviceRo,
                                                privsep::kFlagDirect, "/dev/vg0/root"})));
  Write("privsep", "freeze",
        privsep_seed(0, privsep::EncodeRequest({privsep::Command::kFreeze, 0, "/srv"})));
  Write("privsep", "granted", privsep_seed(1, privsep::EncodeReply({ErrorCode::kOk, 2, ""})));
  Write("privsep", "refused",
        privsep_seed(1, privsep::EncodeReply({ErrorCode::kPermissionDenied, 0,
                                              "refused /dev/sdb: not among the devices"})));
  return 0;
}
