// Who a migrated process runs as on the target (docs/migration.md, "Who may
// run what"): ids travel as names. The source names every uid and gid of the
// process from its user and group databases; the target runs the process
// under the ids those names have there, and refuses when a name is missing.
// Root (any uid 0) or any capability is "privileged": the target allows it
// only when its policy says so (sparetimeMigrationPrivileged TRUE).
//
// Invariants: CredentialNames holds a name for each of the 4 uids, the 4
// gids and every supplementary group, in the order of Credentials; a mapped
// Credentials differs from the source's only in those ids.
#ifndef SPARETIME_MIGRATION_CREDENTIALS_H_
#define SPARETIME_MIGRATION_CREDENTIALS_H_

#include <sys/types.h>

#include <array>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

inline constexpr size_t kMaxSupplementaryGroups = 1024;

// The user and group databases (getpwuid_r/getgrgid_r, getpwnam_r/getgrnam_r:
// /etc/passwd, /etc/group or NSS). Tests may substitute their own.
class AccountDatabase {
 public:
  virtual ~AccountDatabase() = default;
  virtual Result<std::string> UserName(uint32_t uid) const;   // kNotFound when none
  virtual Result<std::string> GroupName(uint32_t gid) const;  // kNotFound when none
  virtual Result<uint32_t> UserId(const std::string& name) const;   // kNotFound when none
  virtual Result<uint32_t> GroupId(const std::string& name) const;  // kNotFound when none
};
const AccountDatabase& SystemAccounts();

// The uid/gid/groups/capability lines of /proc/PID/status.
Result<Credentials> ReadCredentials(pid_t pid, const std::string& proc_root = "/proc");

// Root (any of the 4 uids is 0) or any permitted, effective or inheritable
// capability.
bool IsPrivileged(const Credentials& creds);
// "runs as root", "holds capabilities (permitted 0x...)"; "" when not privileged.
std::string DescribePrivilege(const Credentials& creds);

// Source: the names of every id. kFailedPrecondition naming an id that has
// no name here ("uid 1234 has no user name on this host ...").
Result<CredentialNames> NameCredentials(const Credentials& creds, const AccountDatabase& db = SystemAccounts());

// Target: `creds` with every id replaced by the id its name has on this
// host `host`. kFailedPrecondition naming a user or group missing here.
Result<Credentials> MapCredentials(const Credentials& creds, const CredentialNames& names, const std::string& host,
                                   const AccountDatabase& db = SystemAccounts());

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_CREDENTIALS_H_
