// The key use cases (see ops/keys.h): load the key file from where the
// backups keep it, change it in memory, replace it in one atomic write.
//
// Invariants: one WriteFileAtomic per change (the local copy; peers then get
// the same bytes), so an interrupted change leaves the old file or the new
// one; secrets (master, passphrases, escrow secret) only in SecretBuffer.
#include "sparetime/ops/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <functional>
#include <memory>

#include "peer_setup.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/paper_key.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/replication/peer_repository.h"

namespace sparetime::ops {
namespace {

// Where the key file lives and how to replace it.
struct KeyHome {
  std::string host;
  bool writable = true;
  std::vector<std::string> texts;  // candidates, local copy first
  std::function<Status(const std::string&)> write;
  std::unique_ptr<PeerSetup> setup;  // keeps the identity alive for `write`
};

std::string ThisHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

Result<KeyHome> LoadKeyHome(const OpenOptions& where) {
  ST_RETURN_IF_ERROR(InitCrypto());
  KeyHome home;
  if (const auto* local = std::get_if<LocalRepository>(&where.where)) {
    const std::string path = Repository::KeyFilePath(local->dir);
    Result<std::string> text = ReadFileToString(path);
    if (!text.ok()) {
      if (text.status().code() == ErrorCode::kNotFound) {
        return NotFound(local->dir + " has no key file (" + path +
                        "): is it a sparetime repository? (`sparetime --repo DIR init`)");
      }
      return text.status();
    }
    home.host = ThisHost();
    home.texts.push_back(std::move(*text));
    home.write = [path](const std::string& json) { return WriteFileAtomic(path, json, 0600); };
    return home;
  }
  const auto& peers = std::get<AgentPeers>(where.where);
  ST_ASSIGN_OR_RETURN(PeerSetup setup, LoadPeerSetup(peers, where));
  home.setup = std::make_unique<PeerSetup>(std::move(setup));
  const auto& options = home.setup->options;
  home.host = options.host.empty() ? options.self_name : options.host;
  home.writable = options.host.empty() || options.host == options.self_name;
  ST_ASSIGN_OR_RETURN(home.texts, replication::ReadKeyFiles(options));
  const replication::PeerRepositoryOptions* o = &home.setup->options;
  home.write = [o](const std::string& json) { return replication::WriteKeyFile(*o, json); };
  return home;
}

// The first candidate that parses (for list and escrow).
Result<KeyFile> FirstParsable(const KeyHome& home) {
  Status first = Status::Ok();
  for (const std::string& t : home.texts) {
    Result<KeyFile> f = KeyFile::FromJson(t);
    if (f.ok()) return f;
    if (first.ok()) first = f.status();
  }
  return first;
}

struct Opened {
  KeyFile file;
  UnlockedKey key;
};

// The candidate `passphrase` opens, with its master key.
Result<Opened> OpenWith(const KeyHome& home, const SecretBuffer& passphrase,
                        const KeyCache* cache) {
  Status last = AuthFailed("no key file");
  for (const std::string& t : home.texts) {
    Result<KeyFile> f = KeyFile::FromJson(t);
    if (!f.ok()) {
      last = f.status();
      continue;
    }
    Result<UnlockedKey> k = UnlockKeyFile(*f, passphrase, cache);
    if (k.ok()) return Opened{std::move(*f), std::move(*k)};
    last = k.status();
  }
  if (last.code() == ErrorCode::kAuthFailed) {
    return AuthFailed("wrong passphrase for the key of " + home.host +
                      " (no slot of its key file opens with it)");
  }
  return last;
}

Status CheckWritable(const KeyHome& home) {
  if (home.writable) return Status::Ok();
  return FailedPrecondition("the key of " + home.host + " can be changed only on " + home.host +
                            " (peers take a key file from its owner only)");
}

Status Save(const KeyHome& home, KeyFile& file) {
  ST_RETURN_IF_ERROR(CheckWritable(home));
  file.from_version_1 = false;
  return home.write(file.ToJson());
}

std::string Base64(std::span<const std::byte> bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace

Result<KeyListing> ListKeys(const OpenOptions& where) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_ASSIGN_OR_RETURN(KeyFile file, FirstParsable(home));
  KeyListing out;
  out.host = home.host;
  out.key_id = file.key_id;
  out.version = file.from_version_1 ? 1 : KeyFile::kVersion;
  for (const KeySlot& s : file.slots) {
    out.slots.push_back({s.id, s.label, s.created, s.wrapped.opslimit, s.wrapped.memlimit});
  }
  if (file.escrow) out.escrow_public_key = Base64(file.escrow->public_key);
  return out;
}

Result<uint32_t> AddKey(const OpenOptions& where, const SecretBuffer& passphrase,
                        const SecretBuffer& new_passphrase, KdfLimits limits, std::string label) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_RETURN_IF_ERROR(CheckWritable(home));
  ST_ASSIGN_OR_RETURN(Opened o, OpenWith(home, passphrase, where.key_cache));
  ST_ASSIGN_OR_RETURN(uint32_t id, AddKeySlot(o.file, o.key.master, new_passphrase, limits,
                                              std::move(label), ::time(nullptr)));
  ST_RETURN_IF_ERROR(Save(home, o.file));
  KeepUnlockedKey(o.file.slots.back().wrapped, new_passphrase, o.key.master, where.key_cache);
  return id;
}

Status RemoveKey(const OpenOptions& where, const SecretBuffer& passphrase, uint32_t slot) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_RETURN_IF_ERROR(CheckWritable(home));
  ST_ASSIGN_OR_RETURN(Opened o, OpenWith(home, passphrase, where.key_cache));
  ST_RETURN_IF_ERROR(RemoveKeySlot(o.file, slot));
  return Save(home, o.file);
}

Result<uint32_t> ChangePassphrase(const OpenOptions& where, const SecretBuffer& passphrase,
                                  const SecretBuffer& new_passphrase, KdfLimits limits) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_RETURN_IF_ERROR(CheckWritable(home));
  ST_ASSIGN_OR_RETURN(Opened o, OpenWith(home, passphrase, where.key_cache));
  // One write: the old slot out, the new one in (key_file.h ReplaceKeySlot).
  ST_ASSIGN_OR_RETURN(uint32_t id, ReplaceKeySlot(o.file, o.key.slot, o.key.master,
                                                  new_passphrase, limits, ::time(nullptr)));
  ST_RETURN_IF_ERROR(Save(home, o.file));
  for (const KeySlot& s : o.file.slots) {
    if (s.id == id) KeepUnlockedKey(s.wrapped, new_passphrase, o.key.master, where.key_cache);
  }
  return id;
}

Result<SecretBuffer> ExportPaperKit(const OpenOptions& where, const SecretBuffer& passphrase) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_ASSIGN_OR_RETURN(Opened o, OpenWith(home, passphrase, where.key_cache));
  return PaperKitText(o.key.master, home.host);
}

Result<uint32_t> ImportPaperKit(const OpenOptions& where, std::string_view kit,
                                const SecretBuffer& new_passphrase, KdfLimits limits) {
  ST_ASSIGN_OR_RETURN(PaperKit parsed, ParsePaperKit(kit));
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  ST_RETURN_IF_ERROR(CheckWritable(home));
  ST_ASSIGN_OR_RETURN(KeyFile file, FirstParsable(home));
  if (!file.key_id.empty() && file.key_id != parsed.key_id) {
    return InvalidArgument("this recovery kit is for key " + parsed.key_id + " (host " +
                           parsed.host + "), but the backups of " + home.host + " use key " +
                           file.key_id + ": find the kit printed for this host");
  }
  if (file.key_id.empty()) {
    return FailedPrecondition("the key file of " + home.host +
                              " is still version 1 (no key id to check the kit against): open "
                              "the backups once with a passphrase, or restore a newer copy");
  }
  ST_ASSIGN_OR_RETURN(uint32_t id, AddKeySlot(file, parsed.master, new_passphrase, limits,
                                              "paper kit import", ::time(nullptr)));
  ST_RETURN_IF_ERROR(Save(home, file));
  return id;
}

Result<EscrowRecovery> RecoverWithEscrow(const OpenOptions& where,
                                         const SecretBuffer& escrow_secret_key,
                                         const SecretBuffer* new_passphrase, KdfLimits limits) {
  ST_ASSIGN_OR_RETURN(KeyHome home, LoadKeyHome(where));
  Status last = NotFound("no key file of " + home.host + " has an escrow seal");
  for (const std::string& t : home.texts) {
    Result<KeyFile> file = KeyFile::FromJson(t);
    if (!file.ok()) continue;
    Result<SecretBuffer> master = OpenEscrow(*file, escrow_secret_key);
    if (!master.ok()) {
      // A wrong key beats "no seal" as the message: it is what to fix.
      if (last.code() == ErrorCode::kNotFound) last = master.status();
      continue;
    }
    EscrowRecovery r;
    r.host = home.host;
    r.key_id = file->key_id;
    if (home.writable && new_passphrase != nullptr) {
      ST_ASSIGN_OR_RETURN(uint32_t id, AddKeySlot(*file, *master, *new_passphrase, limits,
                                                  "escrow recovery", ::time(nullptr)));
      ST_RETURN_IF_ERROR(Save(home, *file));
      r.slot = id;
    } else {
      r.paper_kit = PaperKitText(*master, home.host);
    }
    return r;
  }
  return last.WithContext("recovering the key of " + home.host);
}

Result<std::string> EscrowKeygen(const std::string& secret_file) {
  ST_RETURN_IF_ERROR(InitCrypto());
  EscrowKeyPair pair = NewEscrowKeyPair();
  SecretBuffer line(sodium_base64_ENCODED_LEN(kEscrowKeyBytes, sodium_base64_VARIANT_ORIGINAL));
  sodium_bin2base64(reinterpret_cast<char*>(line.data()), line.size(), pair.secret_key.uchar(),
                    pair.secret_key.size(), sodium_base64_VARIANT_ORIGINAL);
  line.data()[line.size() - 1] = std::byte{'\n'};  // the terminator becomes the newline
  Result<Fd> fd = OpenFile(secret_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!fd.ok()) {
    if (fd.status().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists(secret_file + " already exists: an escrow secret key is never "
                           "overwritten; choose a new file name");
    }
    return fd.status().WithContext("writing the escrow secret key");
  }
  ST_RETURN_IF_ERROR(WriteFull(fd->get(), {line.data(), line.size()}));
  ST_RETURN_IF_ERROR(Fsync(fd->get(), secret_file));
  return Base64(pair.public_key);
}

Result<SecretBuffer> ReadEscrowSecretKey(const std::string& secret_file) {
  ST_RETURN_IF_ERROR(InitCrypto());
  Result<Fd> opened = OpenFile(secret_file, O_RDONLY);
  if (!opened.ok()) return opened.status().WithContext("reading the escrow secret key");
  struct stat sb;
  if (::fstat(opened->get(), &sb) != 0) return ErrnoStatus("stat " + secret_file, errno);
  if ((sb.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    return PermissionDenied("escrow secret key " + secret_file +
                            " is readable by group or others: run `chmod 600 " + secret_file +
                            "` and retry");
  }
  SecretBuffer text(128);
  ssize_t n = ::read(opened->get(), text.data(), text.size());
  if (n < 0) return ErrnoStatus("read " + secret_file, errno);
  size_t len = static_cast<size_t>(n);
  while (len > 0 && (text.uchar()[len - 1] == '\n' || text.uchar()[len - 1] == '\r')) --len;
  SecretBuffer key(kEscrowKeyBytes);
  size_t key_len = 0;
  if (sodium_base642bin(key.uchar(), key.size(), reinterpret_cast<const char*>(text.data()), len,
                        nullptr, &key_len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      key_len != kEscrowKeyBytes) {
    return InvalidArgument(secret_file + " is not an escrow secret key (one line of base64, 32 "
                           "bytes, as `sparetime key escrow-keygen` writes it)");
  }
  return key;
}

}  // namespace sparetime::ops
