// Credentials by name (see credentials.h): naming a process's ids on the
// source, mapping the names to this host's ids on the target, and what counts
// as privileged.
#include "sparetime/migration/credentials.h"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <sstream>

#include "dump.h"
#include "proc_files.h"
#include "util.h"

namespace sparetime::migration {
namespace {

constexpr const char* kIdRole[4] = {"real", "effective", "saved", "filesystem"};

std::vector<std::string> Words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

Status ParseIds(const std::string& field, const std::string& value, std::array<uint32_t, 4>& out) {
  auto w = Words(value);
  if (w.size() != 4) return Corruption("status " + field + ": expected 4 ids, got '" + value + "'");
  for (size_t i = 0; i < 4; ++i) {
    ST_ASSIGN_OR_RETURN(uint64_t v, ParseU64(w[i], 10, "status " + field));
    out[i] = static_cast<uint32_t>(v);
  }
  return Status::Ok();
}

// getpw*_r / getgr*_r with a buffer that grows on ERANGE.
template <typename Entry, typename Key, typename Fn>
Result<Entry> Lookup(Fn fn, Key key, std::string& buf, const std::string& what) {
  buf.resize(1024);
  for (;;) {
    Entry e{};
    Entry* found = nullptr;
    int err = fn(key, &e, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0 && err != ENOENT && err != ESRCH) return ErrnoStatus("look up " + what, err);
    if (!found) return NotFound(what + " does not exist");
    return e;
  }
}

class SystemDatabase final : public AccountDatabase {};

}  // namespace

Result<std::string> AccountDatabase::UserName(uint32_t uid) const {
  std::string buf;
  ST_ASSIGN_OR_RETURN(passwd p, Lookup<passwd>(::getpwuid_r, uid, buf, "uid " + std::to_string(uid)));
  return std::string(p.pw_name);
}

Result<std::string> AccountDatabase::GroupName(uint32_t gid) const {
  std::string buf;
  ST_ASSIGN_OR_RETURN(group g, Lookup<group>(::getgrgid_r, gid, buf, "gid " + std::to_string(gid)));
  return std::string(g.gr_name);
}

Result<uint32_t> AccountDatabase::UserId(const std::string& name) const {
  std::string buf;
  ST_ASSIGN_OR_RETURN(passwd p, Lookup<passwd>(::getpwnam_r, name.c_str(), buf, "user " + name));
  return static_cast<uint32_t>(p.pw_uid);
}

Result<uint32_t> AccountDatabase::GroupId(const std::string& name) const {
  std::string buf;
  ST_ASSIGN_OR_RETURN(group g, Lookup<group>(::getgrnam_r, name.c_str(), buf, "group " + name));
  return static_cast<uint32_t>(g.gr_gid);
}

const AccountDatabase& SystemAccounts() {
  static const SystemDatabase db;
  return db;
}

Status ParseCredentials(std::map<std::string, std::string>& status, Credentials& c) {
  ST_RETURN_IF_ERROR(ParseIds("Uid", status["Uid"], c.uids));
  ST_RETURN_IF_ERROR(ParseIds("Gid", status["Gid"], c.gids));
  c.groups.clear();
  for (const std::string& g : Words(status["Groups"])) {
    ST_ASSIGN_OR_RETURN(uint64_t v, ParseU64(g, 10, "status Groups"));
    c.groups.push_back(static_cast<uint32_t>(v));
  }
  ST_ASSIGN_OR_RETURN(c.cap_inheritable, ParseU64(status["CapInh"], 16, "status CapInh"));
  ST_ASSIGN_OR_RETURN(c.cap_permitted, ParseU64(status["CapPrm"], 16, "status CapPrm"));
  ST_ASSIGN_OR_RETURN(c.cap_effective, ParseU64(status["CapEff"], 16, "status CapEff"));
  ST_ASSIGN_OR_RETURN(c.cap_bounding, ParseU64(status["CapBnd"], 16, "status CapBnd"));
  return Status::Ok();
}

Result<Credentials> ReadCredentials(pid_t pid, const std::string& proc_root) {
  ST_ASSIGN_OR_RETURN(auto status, ReadStatus(ProcDir(pid, proc_root)));
  Credentials c;
  ST_RETURN_IF_ERROR(ParseCredentials(status, c));
  return c;
}

bool IsPrivileged(const Credentials& c) { return !DescribePrivilege(c).empty(); }

std::string DescribePrivilege(const Credentials& c) {
  for (uint32_t uid : c.uids)
    if (uid == 0) return "runs as root";
  if (c.cap_permitted || c.cap_effective || c.cap_inheritable) {
    std::ostringstream s;
    s << "holds capabilities (permitted 0x" << std::hex << c.cap_permitted << ", effective 0x" << c.cap_effective
      << ", inheritable 0x" << c.cap_inheritable << ")";
    return s.str();
  }
  return "";
}

Result<CredentialNames> NameCredentials(const Credentials& c, const AccountDatabase& db) {
  auto refuse = [](const std::string& what, const Status& s) {
    if (s.code() != ErrorCode::kNotFound) return s;
    return FailedPrecondition(what + " has no name on this host; a migrated process runs as the user and groups "
                              "of the same names on the target, so give it a name here (and the same one there)");
  };
  CredentialNames n;
  for (size_t i = 0; i < 4; ++i) {
    auto user = db.UserName(c.uids[i]);
    if (!user.ok()) return refuse(std::string(kIdRole[i]) + " uid " + std::to_string(c.uids[i]), user.status());
    n.users[i] = *user;
    auto group = db.GroupName(c.gids[i]);
    if (!group.ok()) return refuse(std::string(kIdRole[i]) + " gid " + std::to_string(c.gids[i]), group.status());
    n.groups[i] = *group;
  }
  if (c.groups.size() > kMaxSupplementaryGroups)
    return FailedPrecondition("it has " + std::to_string(c.groups.size()) + " supplementary groups; at most " +
                              std::to_string(kMaxSupplementaryGroups) + " are moved");
  for (uint32_t gid : c.groups) {
    auto group = db.GroupName(gid);
    if (!group.ok()) return refuse("supplementary gid " + std::to_string(gid), group.status());
    n.supplementary.push_back(*group);
  }
  return n;
}

Result<Credentials> MapCredentials(const Credentials& c, const CredentialNames& n, const std::string& host,
                                   const AccountDatabase& db) {
  if (n.empty() || n.supplementary.size() != c.groups.size())
    return FailedPrecondition("the process image carries no user and group names (made by an older sparetime?); "
                              "a migrated process runs as the user of the same name, so it cannot be placed");
  auto refuse = [&](const std::string& what, const Status& s) {
    if (s.code() != ErrorCode::kNotFound) return s;
    return FailedPrecondition(what + " does not exist on " + host +
                              "; a migrated process runs as the user and groups of the same names there: "
                              "create it on " + host + " or migrate to a host that has it");
  };
  Credentials out = c;
  for (size_t i = 0; i < 4; ++i) {
    auto uid = db.UserId(n.users[i]);
    if (!uid.ok()) return refuse("user " + n.users[i] + " (" + kIdRole[i] + " uid)", uid.status());
    out.uids[i] = *uid;
    auto gid = db.GroupId(n.groups[i]);
    if (!gid.ok()) return refuse("group " + n.groups[i] + " (" + kIdRole[i] + " gid)", gid.status());
    out.gids[i] = *gid;
  }
  for (size_t i = 0; i < n.supplementary.size(); ++i) {
    auto gid = db.GroupId(n.supplementary[i]);
    if (!gid.ok()) return refuse("group " + n.supplementary[i] + " (supplementary)", gid.status());
    out.groups[i] = *gid;
  }
  return out;
}

}  // namespace sparetime::migration
