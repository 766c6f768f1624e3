// LDAP connections for the LDAP directory backend: RAII owners for libldap
// objects, the checked connection settings, connect (initialize, options,
// StartTLS, bind) and a session that reconnects with backoff.
//
// Invariants: every LDAP*, LDAPMessage*, BerElement, value array and string
// libldap hands out is owned by one of the unique_ptr types below; a handle
// that reported the server gone is discarded, never reused; the bind password
// lives in sodium memory only for the duration of a bind; every libldap error
// becomes a Status naming the URI, the operation and the DN, with
// ldap_err2string and the server's diagnostic message. Not thread-safe.
#ifndef SPARETIME_DIRECTORY_LDAP_CONN_H_
#define SPARETIME_DIRECTORY_LDAP_CONN_H_

#include <ldap.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/directory.h"

namespace sparetime::directory::ldap {

struct LdapDeleter {
  void operator()(LDAP* ld) const { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};
using LdapPtr = std::unique_ptr<LDAP, LdapDeleter>;

struct MessageDeleter {
  void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
using MessagePtr = std::unique_ptr<LDAPMessage, MessageDeleter>;

// A BerElement that owns its buffer (ber_alloc_t, ber_init).
struct BerDeleter {
  void operator()(BerElement* b) const { ber_free(b, 1); }
};
using BerPtr = std::unique_ptr<BerElement, BerDeleter>;

// The attribute iterator of ldap_first_attribute (the buffer belongs to the
// message).
struct BerIteratorDeleter {
  void operator()(BerElement* b) const { ber_free(b, 0); }
};
using BerIteratorPtr = std::unique_ptr<BerElement, BerIteratorDeleter>;

struct ValuesDeleter {
  void operator()(berval** v) const { ldap_value_free_len(v); }
};
using ValuesPtr = std::unique_ptr<berval*, ValuesDeleter>;

struct BervalDeleter {
  void operator()(berval* v) const { ber_bvfree(v); }
};
using BervalPtr = std::unique_ptr<berval, BervalDeleter>;

struct ControlsDeleter {
  void operator()(LDAPControl** c) const { ldap_controls_free(c); }
};
using ControlsPtr = std::unique_ptr<LDAPControl*, ControlsDeleter>;

struct ControlDeleter {
  void operator()(LDAPControl* c) const { ldap_control_free(c); }
};
using ControlPtr = std::unique_ptr<LDAPControl, ControlDeleter>;

struct LdapStringDeleter {
  void operator()(char* s) const { ldap_memfree(s); }
};
using LdapString = std::unique_ptr<char, LdapStringDeleter>;

// A DirectoryConfig checked for an LDAP URI, with the TLS decision made.
struct LdapSettings {
  DirectoryConfig config;
  bool tls = false;        // CA/certificate options apply (StartTLS or ldaps://)
  bool start_tls = false;  // ldap:// upgraded with StartTLS
};

// Checks `config` (URI form, TLS rule, bind method, password file mode,
// limits); every error says which setting to fix.
Result<LdapSettings> CheckSettings(const DirectoryConfig& config);

// The Status for libldap result `rc` of `op` on `dn` (may be empty):
// "<uri>: <op> <dn> failed: <ldap_err2string> (<diagnostic>)". Server-gone
// codes become kUnavailable; `ld` may be null.
Status LdapStatus(LDAP* ld, int rc, std::string_view uri, std::string_view op,
                  std::string_view dn = {});

// True for the result codes after which a handle must be discarded and the
// connection made again (server down, connect error, timeout, unavailable).
bool ServerGone(int rc);

// A duration as the timeval libldap takes.
timeval ToTimeval(std::chrono::milliseconds d);

// Delay before reconnect attempt `attempt` (0-based): 100 ms doubling, at
// most 5 s.
std::chrono::milliseconds Backoff(int attempt);

// Opens a connection: ldap_initialize, protocol v3, timeouts, TLS options,
// StartTLS when required, then the configured bind. kUnavailable when the
// server cannot be reached.
Result<LdapPtr> Connect(const LdapSettings& settings);

// One connection used for request/response operations, made lazily and made
// again with backoff when the server has gone away.
class LdapSession {
 public:
  LdapSession(const LdapSettings& settings, const Clock& clock)
      : settings_(settings), clock_(clock) {}

  // Runs `fn` on a connected handle. When connecting or `fn` fails with
  // kUnavailable, the handle is discarded and the whole of `fn` runs again
  // after 100, 200 and 400 ms (no sleep past `deadline`, when given); `fn`
  // must therefore be safe to repeat. Still failing: kUnavailable naming the
  // URI and `what`.
  Status Run(std::string_view what, const std::function<Status(LDAP*)>& fn,
             std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

 private:
  const LdapSettings& settings_;
  const Clock& clock_;
  LdapPtr ld_;
};

}  // namespace sparetime::directory::ldap

#endif  // SPARETIME_DIRECTORY_LDAP_CONN_H_
