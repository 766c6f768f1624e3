// Directory: where agents find each other and their policy. Two backends
// behind one interface: an LDAP server (OpenLDAP, via libldap) and an LDIF
// file holding the same entries (for a single box or a lab without a server).
//
// Invariants: Fetch() returns one complete read or an error; Register() only
// ever writes the calling agent's own entry; WaitForChange() is bounded by its
// argument. Implementations are not thread-safe; give each thread its own.
#ifndef SPARETIME_DIRECTORY_DIRECTORY_H_
#define SPARETIME_DIRECTORY_DIRECTORY_H_

#include <chrono>
#include <memory>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/entry.h"
#include "sparetime/directory/records.h"

namespace sparetime::directory {

struct DirectoryConfig {
  // ldap://host[:port], ldaps://host[:port], ldapi://<urlencoded socket path>,
  // or the path of an LDIF file (file:///path or /path).
  std::string uri;
  // The ou=sparetime entry; agents live in ou=agents and policies in
  // ou=policies under it.
  std::string base_dn;
  // Simple bind as bind_dn with the password in password_file (must not be
  // readable by group or others). Empty bind_dn with sasl_external: SASL
  // EXTERNAL (ldapi:// peer credentials or a TLS client certificate).
  std::string bind_dn;
  std::string password_file;
  bool sasl_external = false;
  // CA certificate(s) that sign the server's certificate. StartTLS (or
  // ldaps://) with this CA is required unless the URI is ldapi:// or names
  // a loopback address.
  std::string ca_file;
  // Optional TLS client certificate and key (for SASL EXTERNAL over TLS).
  std::string cert_file;
  std::string key_file;
  std::chrono::milliseconds network_timeout{5000};  // connect
  std::chrono::milliseconds operation_timeout{10000};  // each request
  int page_size = 500;  // simple paged results (RFC 2696)
  // How often WaitForChange polls when the server offers no persistent search.
  std::chrono::milliseconds poll_interval{30000};
};

class Directory {
 public:
  virtual ~Directory() = default;

  // "ldap://127.0.0.1:3890 (ou=sparetime,dc=example,dc=org)" or the file path.
  virtual std::string Describe() const = 0;

  // Reads every agent, policy and the groups the policies name.
  // Unavailable when the server cannot be reached (after reconnect attempts).
  virtual Result<DirectoryContents> Fetch() = 0;

  // Creates or updates the caller's own agent entry: address, port, capacity,
  // free, version, devices held and last-seen = now; the public key only when
  // the entry has none yet. An existing entry with a different key is an
  // error (kAuthFailed) naming both keys: only an admin may change a key.
  virtual Status Register(const AgentRegistration& self, TimePoint now) = 0;

  // Returns true as soon as anything under base_dn may have changed since the
  // previous call (or since construction), false when `max_wait` passes first.
  virtual Result<bool> WaitForChange(std::chrono::milliseconds max_wait) = 0;
};

// Opens the backend the URI names. LDAP connections are made lazily and
// re-made with backoff when the server goes away; opening fails only on a
// bad configuration (bad URI, unreadable or too-open password file, TLS
// required but no CA file...).
Result<std::unique_ptr<Directory>> OpenDirectory(const DirectoryConfig& config,
                                                 const Clock& clock = SystemClock());

// Escapes a value for use inside an LDAP search filter (RFC 4515):
// '*', '(', ')', '\\' and NUL become \2a, \28, \29, \5c, \00.
std::string EscapeFilterValue(std::string_view value);
// Escapes a value for use as an RDN value in a DN (RFC 4514).
std::string EscapeDnValue(std::string_view value);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_DIRECTORY_H_
