// LDAP connections: settings checks (URI, TLS rule, bind method, password
// file), connect + StartTLS + bind, result-code mapping and the reconnecting
// session. See ldap_conn.h for the invariants.
#include "ldap_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "sparetime/base/fd.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::directory::ldap {
namespace {

constexpr int kRunAttempts = 4;  // the first try, then after 100, 200, 400 ms
constexpr size_t kMaxPasswordBytes = 4096;

struct UrlDescDeleter {
  void operator()(LDAPURLDesc* d) const { ldap_free_urldesc(d); }
};

bool IsLoopbackHost(const std::string& host) {
  if (EqualsIgnoreCase(host, "localhost") || EqualsIgnoreCase(host, "localhost.")) return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads the bind password: a regular file that neither group nor others may
// read or write, one trailing newline stripped, into sodium memory.
Result<SecretBuffer> ReadPassword(const std::string& path) {
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(path, O_RDONLY | O_NOCTTY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("password file " + path, errno);
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument("password file " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied("password file " + path + " has mode " + Octal(st.st_mode) +
                            ": it must not be readable or writable by group or others; run "
                            "`chmod 600 " + path + "`");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxPasswordBytes) {
    return InvalidArgument("password file " + path + " is larger than " +
                           std::to_string(kMaxPasswordBytes) + " bytes: it should hold only "
                           "the password");
  }
  SecretBuffer raw(static_cast<size_t>(st.st_size));
  ST_ASSIGN_OR_RETURN(size_t n, ReadFullAt(fd.get(), raw.span(), 0));
  if (n > 0 && raw.data()[n - 1] == std::byte{'\n'}) --n;
  if (n == 0) {
    // An empty simple-bind password is an anonymous bind (RFC 4513 5.1.2).
    return InvalidArgument("password file " + path + " is empty: write the bind password into it");
  }
  SecretBuffer password(n);
  std::memcpy(password.data(), raw.data(), n);
  return password;
}

std::string Diagnostic(LDAP* ld) {
  if (ld == nullptr) return {};
  char* raw = nullptr;
  if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &raw) != LDAP_OPT_SUCCESS) return {};
  LdapString diag(raw);
  return diag && *diag ? std::string(diag.get()) : std::string();
}

Status SetOption(LDAP* ld, int option, const void* value, const std::string& uri,
                 const std::string& what) {
  if (ldap_set_option(ld, option, value) == LDAP_OPT_SUCCESS) return Status::Ok();
  return InvalidArgument(uri + ": cannot set " + what + " on the LDAP handle");
}

Status SetTlsOptions(LDAP* ld, const LdapSettings& s) {
  const DirectoryConfig& c = s.config;
  if (!c.ca_file.empty()) {
    ST_RETURN_IF_ERROR(
        SetOption(ld, LDAP_OPT_X_TLS_CACERTFILE, c.ca_file.c_str(), c.uri, "ca_file " + c.ca_file));
  }
  if (!c.cert_file.empty()) {
    ST_RETURN_IF_ERROR(SetOption(ld, LDAP_OPT_X_TLS_CERTFILE, c.cert_file.c_str(), c.uri,
                                 "cert_file " + c.cert_file));
    ST_RETURN_IF_ERROR(SetOption(ld, LDAP_OPT_X_TLS_KEYFILE, c.key_file.c_str(), c.uri,
                                 "key_file " + c.key_file));
  }
  const int require = LDAP_OPT_X_TLS_HARD;
  ST_RETURN_IF_ERROR(SetOption(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require, c.uri,
                               "certificate checking (TLS_REQCERT hard)"));
  const int min_protocol = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
  ST_RETURN_IF_ERROR(
      SetOption(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min_protocol, c.uri, "TLS 1.2 minimum"));
  // The options above take effect only in a new TLS context (client side: 0).
  const int is_server = 0;
  return SetOption(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server, c.uri, "a new TLS context");
}

Status Bind(LDAP* ld, const LdapSettings& s) {
  const DirectoryConfig& c = s.config;
  char empty[] = "";
  berval no_credentials{0, empty};
  if (c.sasl_external) {
    // An empty, non-NULL credential: a NULL one leaves the bind "in progress".
    int rc = ldap_sasl_bind_s(ld, nullptr, "EXTERNAL", &no_credentials, nullptr, nullptr, nullptr);
    if (rc == LDAP_SUCCESS) return Status::Ok();
    Status st = LdapStatus(ld, rc, c.uri, "SASL EXTERNAL bind");
    return Status(st.code(), st.message() + "; check that the server maps this process's "
                                            "identity (ldapi:// peer credentials or the TLS "
                                            "client certificate) to a DN");
  }
  if (c.bind_dn.empty()) {
    // Anonymous: a bind still makes the connection, so errors surface here.
    int rc = ldap_sasl_bind_s(ld, "", LDAP_SASL_SIMPLE, &no_credentials, nullptr, nullptr, nullptr);
    return rc == LDAP_SUCCESS ? Status::Ok() : LdapStatus(ld, rc, c.uri, "anonymous bind");
  }
  ST_ASSIGN_OR_RETURN(SecretBuffer password, ReadPassword(c.password_file));
  berval credentials{static_cast<ber_len_t>(password.size()),
                     reinterpret_cast<char*>(password.data())};
  int rc = ldap_sasl_bind_s(ld, c.bind_dn.c_str(), LDAP_SASL_SIMPLE, &credentials, nullptr,
                            nullptr, nullptr);
  if (rc == LDAP_SUCCESS) return Status::Ok();
  Status st = LdapStatus(ld, rc, c.uri, "simple bind as", c.bind_dn);
  if (rc == LDAP_INVALID_CREDENTIALS) {
    return AuthFailed(st.message() + "; check bind_dn and the password in " + c.password_file);
  }
  return st;
}

}  // namespace

timeval ToTimeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

bool ServerGone(int rc) {
  return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
         rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

std::chrono::milliseconds Backoff(int attempt) {
  constexpr std::chrono::milliseconds kFirst{100}, kMax{5000};
  return attempt >= 6 ? kMax : std::min(kMax, kFirst * (1 << attempt));
}

Status LdapStatus(LDAP* ld, int rc, std::string_view uri, std::string_view op,
                  std::string_view dn) {
  std::string message = std::string(uri) + ": " + std::string(op);
  if (!dn.empty()) message += " '" + std::string(dn) + "'";
  message += " failed: ";
  message += ldap_err2string(rc);
  const std::string diag = Diagnostic(ld);
  if (!diag.empty()) message += " (" + diag + ")";
  ErrorCode code = ErrorCode::kIoError;
  switch (rc) {
    case LDAP_INVALID_CREDENTIALS:
      code = ErrorCode::kAuthFailed;
      break;
    case LDAP_INSUFFICIENT_ACCESS:
    case LDAP_INAPPROPRIATE_AUTH:
    case LDAP_STRONG_AUTH_REQUIRED:
    case LDAP_CONFIDENTIALITY_REQUIRED:
    case LDAP_UNWILLING_TO_PERFORM:
      code = ErrorCode::kPermissionDenied;
      break;
    case LDAP_NO_SUCH_OBJECT:
      code = ErrorCode::kNotFound;
      break;
    case LDAP_ALREADY_EXISTS:
    case LDAP_TYPE_OR_VALUE_EXISTS:
      code = ErrorCode::kAlreadyExists;
      break;
    case LDAP_INVALID_SYNTAX:
    case LDAP_CONSTRAINT_VIOLATION:
    case LDAP_OBJECT_CLASS_VIOLATION:
    case LDAP_UNDEFINED_TYPE:
    case LDAP_INVALID_DN_SYNTAX:
    case LDAP_NAMING_VIOLATION:
    case LDAP_FILTER_ERROR:
      code = ErrorCode::kInvalidArgument;
      break;
    default:
      if (ServerGone(rc)) code = ErrorCode::kUnavailable;
  }
  return Status(code, std::move(message));
}

Result<LdapSettings> CheckSettings(const DirectoryConfig& config) {
  LdapSettings s{config};
  const std::string& uri = config.uri;
  LDAPURLDesc* raw = nullptr;
  if (ldap_url_parse(uri.c_str(), &raw) != LDAP_URL_SUCCESS) {
    return InvalidArgument("directory URI '" + uri + "' is not an LDAP URL: use ldap://host[:port], "
                           "ldaps://host[:port] or ldapi://<url-encoded socket path>");
  }
  std::unique_ptr<LDAPURLDesc, UrlDescDeleter> url(raw);
  const std::string scheme = url->lud_scheme ? url->lud_scheme : "";
  const std::string host = url->lud_host ? url->lud_host : "";
  const bool ldapi = scheme == "ldapi";
  if (!ldapi && scheme != "ldap" && scheme != "ldaps") {
    return InvalidArgument("directory URI '" + uri + "': unknown scheme '" + scheme +
                           "' (use ldap://, ldaps:// or ldapi://)");
  }
  if (!ldapi && host.empty()) {
    return InvalidArgument("directory URI '" + uri + "' names no server: use ldap://host[:port]");
  }
  if (config.base_dn.empty()) {
    return InvalidArgument("directory base_dn is empty: set it to the ou=sparetime entry, e.g. "
                           "ou=sparetime,dc=example,dc=org");
  }
  LDAPDN dn = nullptr;
  if (ldap_str2dn(config.base_dn.c_str(), &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
    return InvalidArgument("directory base_dn '" + config.base_dn + "' is not a valid DN");
  }
  ldap_dnfree(dn);

  // TLS: always with a CA file when one is given (ldapi:// excepted); required
  // for anything but ldapi:// and loopback.
  const bool loopback = ldapi || IsLoopbackHost(host);
  if (!loopback && config.ca_file.empty()) {
    return InvalidArgument("directory URI '" + uri + "' is not a loopback address, so TLS is "
                           "required: set ca_file to the CA certificate that signs the server's "
                           "certificate (StartTLS is then used for ldap://)");
  }
  if (config.cert_file.empty() != config.key_file.empty()) {
    return InvalidArgument("set both cert_file and key_file (a TLS client certificate and its "
                           "key), or neither");
  }
  if (!config.cert_file.empty() && config.ca_file.empty() && !ldapi) {
    return InvalidArgument("cert_file is set but ca_file is not: a client certificate needs TLS, "
                           "set ca_file");
  }
  for (const std::string* file : {&config.ca_file, &config.cert_file, &config.key_file}) {
    if (!file->empty() && ::access(file->c_str(), R_OK) != 0) {
      return ErrnoStatus("TLS file " + *file + " (ca_file/cert_file/key_file)", errno);
    }
  }
  s.tls = !ldapi && (scheme == "ldaps" || !config.ca_file.empty());
  s.start_tls = s.tls && scheme == "ldap";

  // Bind method.
  if (config.sasl_external && !config.bind_dn.empty()) {
    return InvalidArgument("set either bind_dn (with password_file) or sasl_external, not both");
  }
  if (!config.bind_dn.empty()) {
    if (config.password_file.empty()) {
      return InvalidArgument("bind_dn " + config.bind_dn + " is set but password_file is not: "
                             "put the password in a file with mode 0600 and set password_file");
    }
    ST_ASSIGN_OR_RETURN(SecretBuffer checked, ReadPassword(config.password_file));
  }
  if (config.network_timeout.count() <= 0 || config.operation_timeout.count() <= 0 ||
      config.poll_interval.count() <= 0) {
    return InvalidArgument("directory network_timeout, operation_timeout and poll_interval must "
                           "be positive");
  }
  if (config.page_size <= 0) {
    return InvalidArgument("directory page_size must be positive (e.g. 500)");
  }
  return s;
}

Result<LdapPtr> Connect(const LdapSettings& s) {
  const std::string& uri = s.config.uri;
  LDAP* raw = nullptr;
  int rc = ldap_initialize(&raw, uri.c_str());
  if (rc != LDAP_SUCCESS) return LdapStatus(nullptr, rc, uri, "ldap_initialize");
  LdapPtr ld(raw);
  const int version = LDAP_VERSION3;
  ST_RETURN_IF_ERROR(SetOption(ld.get(), LDAP_OPT_PROTOCOL_VERSION, &version, uri, "LDAPv3"));
  const timeval network = ToTimeval(s.config.network_timeout);
  ST_RETURN_IF_ERROR(
      SetOption(ld.get(), LDAP_OPT_NETWORK_TIMEOUT, &network, uri, "the network timeout"));
  const timeval operation = ToTimeval(s.config.operation_timeout);
  ST_RETURN_IF_ERROR(
      SetOption(ld.get(), LDAP_OPT_TIMEOUT, &operation, uri, "the operation timeout"));
  ST_RETURN_IF_ERROR(SetOption(ld.get(), LDAP_OPT_RESTART, LDAP_OPT_ON, uri, "EINTR restart"));
  ST_RETURN_IF_ERROR(
      SetOption(ld.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF, uri, "referral chasing off"));
  if (s.tls) ST_RETURN_IF_ERROR(SetTlsOptions(ld.get(), s));
  if (s.start_tls) {
    rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
      Status st = LdapStatus(ld.get(), rc, uri, "StartTLS");
      if (rc != LDAP_CONNECT_ERROR) return st;
      // The server answered but the TLS handshake failed: retrying cannot help.
      return AuthFailed(st.message() + "; the server's certificate must be signed by the CA in "
                        "ca_file " + s.config.ca_file + " and name the host of the URI (for "
                        "localhost, libldap checks this machine's host name instead)");
    }
  }
  ST_RETURN_IF_ERROR(Bind(ld.get(), s));
  return ld;
}

Status LdapSession::Run(std::string_view what, const std::function<Status(LDAP*)>& fn,
                        std::optional<std::chrono::steady_clock::time_point> deadline) {
  Status last;
  int attempts = 0;
  for (; attempts < kRunAttempts; ++attempts) {
    if (attempts > 0) {
      const auto delay = Backoff(attempts - 1);
      if (deadline && clock_.MonoNow() + delay > *deadline) break;
      clock_.SleepFor(delay);
    }
    if (!ld_) {
      Result<LdapPtr> connected = Connect(settings_);
      if (!connected.ok()) {
        last = connected.error();
        if (last.code() == ErrorCode::kUnavailable) continue;
        return last;
      }
      ld_ = std::move(connected).value();
    }
    last = fn(ld_.get());
    if (last.code() != ErrorCode::kUnavailable) return last;
    ld_.reset();  // after a server restart the old handle never recovers
  }
  return Unavailable("directory server " + settings_.config.uri + " is unreachable: " +
                     std::string(what) + " gave up after " + std::to_string(attempts) +
                     " attempt(s); last error: " + last.message());
}

}  // namespace sparetime::directory::ldap
