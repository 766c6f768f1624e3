// Change notification for the LDAP directory backend (Directory::WaitForChange).
//
// When the server's root DSE lists the Content Synchronization control
// (RFC 4533, slapd's syncprov overlay), a refreshAndPersist search over the
// whole base runs on a connection of its own and every entry or syncIdSet the
// server sends after the initial refresh is a change. The sync cookie is kept
// across reconnects, so a resumed session reports only what changed while
// it was away. Otherwise the watcher polls every poll_interval: one paged
// search of every entry under the base for its entryCSN and modifyTimestamp,
// hashed; a different hash means something was added, modified or deleted
// (server-side values only, so client clock skew cannot hide a change).
//
// Invariants: Wait() returns within max_wait (plus at most one connection
// attempt in flight); "true" may be spurious (the first call, a new sync
// session without a cookie, a server that drops the session) but a change
// is never reported as "false". Not thread-safe.
#ifndef SPARETIME_DIRECTORY_LDAP_WATCH_H_
#define SPARETIME_DIRECTORY_LDAP_WATCH_H_

#include <chrono>
#include <optional>
#include <string>

#include "ldap_conn.h"
#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"

namespace sparetime::directory::ldap {

class ChangeWatcher {
 public:
  // `session` is the backend's request connection (root DSE, polling).
  ChangeWatcher(const LdapSettings& settings, const Clock& clock, LdapSession& session)
      : settings_(settings), clock_(clock), session_(session) {}

  // True as soon as anything under the base may have changed since the
  // previous call; false when `max_wait` passes first. kUnavailable when the
  // server stayed unreachable until then.
  Result<bool> Wait(std::chrono::milliseconds max_wait);

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  enum class Mode { kUnknown, kSync, kPoll };

  Result<bool> WaitOnce(Deadline deadline);
  Result<bool> WaitSync(Deadline deadline);
  Result<bool> WaitPoll(Deadline deadline);
  Status StartSync();
  // True when `message` (of the sync search) reports a change or ends the
  // session.
  Result<bool> HandleSyncMessage(LDAPMessage* message);
  bool HandleSyncInfo(LDAPMessage* message);
  Result<std::string> Digest(Deadline deadline);

  const LdapSettings& settings_;
  const Clock& clock_;
  LdapSession& session_;
  Mode mode_ = Mode::kUnknown;

  // Sync (RFC 4533) state.
  LdapPtr sync_ld_;
  int sync_msgid_ = -1;
  std::string cookie_;
  bool resumed_ = false;       // the current session started from a cookie
  bool refresh_done_ = false;  // the current session is in its persist phase

  // Polling state.
  std::optional<std::string> digest_;
  Deadline next_poll_{};
};

}  // namespace sparetime::directory::ldap

#endif  // SPARETIME_DIRECTORY_LDAP_WATCH_H_
