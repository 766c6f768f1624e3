// The file directory: an LDIF file (e.g. /etc/sparetime/directory.ldif)
// holding the same entries as the LDAP tree, for a single box or a small lab
// without a server.
//
// Fetch() re-reads the whole file every time: agents are the sparetimeAgent
// entries below ou=agents,<base_dn>, policies the sparetimePolicy entries
// below ou=policies,<base_dn>, groups the groupOfNames entries (anywhere in
// the file) that a policy names. Register() rewrites the file with
// WriteFileAtomic under an exclusive flock on "<file>.lock", so agents on one
// box never lose each other's updates and readers always see a whole file.
// Only the caller's own entry is rewritten: every other entry, the comments
// and blank lines between entries and the comments before the caller's entry
// are kept byte for byte; comments inside the caller's entry and its line
// folding are not. WaitForChange() polls the file's identity (inode, size,
// mtime).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "backends.h"
#include "ldif.h"
#include "sparetime/base/fd.h"
#include "values.h"

namespace sparetime::directory {
namespace {

constexpr auto kLockTimeout = std::chrono::seconds(10);
constexpr auto kLockRetry = std::chrono::milliseconds(20);
constexpr auto kMaxPollStep = std::chrono::seconds(1);

// The attributes an agent keeps current (and sparetimeBackupState/Health,
// written when the registration carries them); other attributes are the
// admin's.
constexpr const char* kDynamicAttributes[] = {"sparetimeAddress", "sparetimePort",
                                              "sparetimeCapacity", "sparetimeFree",
                                              "sparetimeLastSeen", "sparetimeVersion",
                                              "sparetimeDeviceHeld"};

struct FileId {
  bool exists = false;
  dev_t dev = 0;
  ino_t inode = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileId&) const = default;
};

FileId StatFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_dev, st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

bool IsUnder(const std::string& normalized_dn, const std::string& normalized_base) {
  return normalized_dn.size() > normalized_base.size() + 1 &&
         normalized_dn.ends_with("," + normalized_base);
}

// An exclusive flock on a lock file, held for the object's lifetime.
Result<Fd> LockFile(const std::string& lock_path, const Clock& clock) {
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(lock_path, O_RDWR | O_CREAT, 0600));
  auto deadline = clock.MonoNow() + kLockTimeout;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) return ErrnoStatus("flock " + lock_path, err);
    if (clock.MonoNow() >= deadline) {
      return Unavailable("another process has held the lock " + lock_path + " for more than " +
                         std::to_string(kLockTimeout.count()) +
                         " s; find it with `fuser " + lock_path + "`");
    }
    clock.SleepFor(kLockRetry);
  }
  return fd;
}

class LdifDirectory final : public Directory {
 public:
  LdifDirectory(std::string path, DirectoryConfig config, const Clock& clock)
      : path_(std::move(path)),
        config_(std::move(config)),
        clock_(clock),
        base_(NormalizeDn(config_.base_dn)),
        seen_(StatFile(path_)) {}

  std::string Describe() const override { return path_ + " (" + config_.base_dn + ")"; }

  Result<DirectoryContents> Fetch() override {
    ST_ASSIGN_OR_RETURN(LdifDocument doc, Read());
    DirectoryContents contents;
    std::string agents_base = "ou=agents," + base_, policies_base = "ou=policies," + base_;
    std::set<std::string> named_groups;
    for (const LdifRecord& r : doc.records) {
      std::string dn = NormalizeDn(r.dn);
      Entry e = r.ToEntry();
      if (IsUnder(dn, agents_base) && e.HasObjectClass("sparetimeAgent")) {
        contents.agents.push_back(std::move(e));
      } else if (IsUnder(dn, policies_base) && e.HasObjectClass("sparetimePolicy")) {
        for (const std::string& g : e.Values("sparetimeAppliesToGroup")) {
          named_groups.insert(NormalizeDn(g));
        }
        contents.policies.push_back(std::move(e));
      }
    }
    for (const LdifRecord& r : doc.records) {
      if (named_groups.count(NormalizeDn(r.dn)) == 0) continue;
      Entry e = r.ToEntry();
      if (e.HasObjectClass("groupOfNames")) contents.groups.push_back(std::move(e));
    }
    return contents;
  }

  Status Register(const AgentRegistration& self, TimePoint now) override {
    if (!IsHostName(self.name)) {
      return InvalidArgument("agent name \"" + self.name +
                             "\" is not a host name (1-255 letters, digits, '-', '.' or '_')");
    }
    if (self.address.empty() || self.port == 0) {
      return InvalidArgument("agent " + self.name + ": registration needs an address and a port");
    }
    ST_ASSIGN_OR_RETURN(Fd lock, LockFile(path_ + ".lock", clock_));
    FileId before = StatFile(path_);
    // Never create the file: a missing directory is an outage (unmounted,
    // being replaced), not an empty domain to start afresh in.
    ST_ASSIGN_OR_RETURN(LdifDocument doc, Read());
    std::string dn = "cn=" + self.name + ",ou=agents," + config_.base_dn;
    auto it = std::find_if(doc.records.begin(), doc.records.end(), [&](const LdifRecord& r) {
      return NormalizeDn(r.dn) == NormalizeDn(dn);
    });
    std::string key = EncodeKey(self.public_key);
    if (it == doc.records.end()) {
      LdifRecord r;
      r.dn = dn;
      r.preamble = std::move(doc.trailer);
      doc.trailer.clear();
      r.attributes = {{"objectClass", "sparetimeAgent"}, {"cn", self.name}, {"sparetimePublicKey", key}};
      if (!self.site.empty()) r.attributes.push_back({"sparetimeSite", self.site});
      doc.records.push_back(std::move(r));
      it = doc.records.end() - 1;
    } else {
      ST_RETURN_IF_ERROR(CheckKey(*it, self.public_key));
      if (it->ToEntry().Values("sparetimePublicKey").empty()) it->SetValues("sparetimePublicKey", {key});
    }
    const std::vector<std::string> values[] = {
        {self.address},          {std::to_string(self.port)},       {std::to_string(self.capacity)},
        {std::to_string(self.free)}, {FormatGeneralizedTime(now)}, {self.version},
        self.devices_held};
    for (size_t i = 0; i < std::size(kDynamicAttributes); ++i) {
      std::vector<std::string> v = values[i];
      v.erase(std::remove(v.begin(), v.end(), std::string()), v.end());  // empty: no value
      it->SetValues(kDynamicAttributes[i], v);
    }
    // The fleet state (fleet_state.h), when the agent knows it.
    if (self.backups) {
      std::vector<std::string> v;
      for (const DeviceBackupState& d : *self.backups) v.push_back(EncodeDeviceState(d));
      it->SetValues("sparetimeBackupState", v);
    }
    if (self.health) it->SetValues("sparetimeBackupHealth", {EncodeBackupHealth(*self.health)});
    struct stat st;
    mode_t mode = ::stat(path_.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
    ST_RETURN_IF_ERROR(WriteFileAtomic(path_, SerializeLdif(doc), mode)
                           .WithContext("registering agent " + self.name + " in " + path_));
    // Our own heartbeat is not news; a change by someone else before it is.
    if (before == seen_) seen_ = StatFile(path_);
    return Status::Ok();
  }

  Result<bool> WaitForChange(std::chrono::milliseconds max_wait) override {
    auto step = std::clamp<std::chrono::milliseconds>(config_.poll_interval,
                                                      std::chrono::milliseconds(1), kMaxPollStep);
    auto deadline = clock_.MonoNow() + max_wait;
    while (true) {
      FileId now_id = StatFile(path_);
      if (!(now_id == seen_)) {
        seen_ = now_id;
        return true;
      }
      auto now = clock_.MonoNow();
      if (now >= deadline) return false;
      clock_.SleepFor(std::min<std::chrono::nanoseconds>(step, deadline - now));
    }
  }

 private:
  Result<LdifDocument> Read() const {
    Result<std::string> text = ReadFileToString(path_);
    if (!text.ok()) {
      return Unavailable("cannot read the directory file: " + text.status().message() +
                         "; create it (example: conf/directory.ldif) or fix its permissions");
    }
    Result<LdifDocument> doc = ParseLdif(*text, path_);
    if (!doc.ok()) return doc.status().WithContext("directory file is not valid LDIF, fix it");
    return doc;
  }

  Status CheckKey(const LdifRecord& record, const PublicKey& key) const {
    const Entry entry = record.ToEntry();
    for (const std::string& existing : entry.Values("sparetimePublicKey")) {
      Result<PublicKey> decoded = DecodeKey(existing);
      if (decoded.ok() && *decoded == key) continue;
      return AuthFailed("agent entry " + record.dn + " in " + path_ + " (line " +
                        std::to_string(record.line) + ") holds public key " + existing +
                        " but this agent's key is " + EncodeKey(key) +
                        "; only an admin may change a key: if the host was reinstalled, "
                        "remove the old sparetimePublicKey line from the entry");
    }
    return Status::Ok();
  }

  const std::string path_;
  const DirectoryConfig config_;
  const Clock& clock_;
  const std::string base_;  // normalised base_dn
  FileId seen_;             // the file as of the last change reported
};

}  // namespace

Result<std::unique_ptr<Directory>> OpenLdifDirectory(const std::string& path,
                                                     const DirectoryConfig& config,
                                                     const Clock& clock) {
  if (path.empty() || path.front() != '/') {
    return InvalidArgument("directory file \"" + path + "\" must be an absolute path");
  }
  if (config.base_dn.find('=') == std::string::npos) {
    return InvalidArgument("directory " + path + ": base DN \"" + config.base_dn +
                           "\" is not a DN; give the ou=sparetime entry, e.g. "
                           "ou=sparetime,dc=example,dc=org");
  }
  return std::unique_ptr<Directory>(new LdifDirectory(path, config, clock));
}

}  // namespace sparetime::directory
