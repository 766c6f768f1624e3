// SlapdServer: a throwaway OpenLDAP server (Debian's /usr/sbin/slapd) for
// integration tests, on 127.0.0.1 with a random free port, its own temporary
// slapd.d and mdb database, the project's schema and ACLs from conf/ldap/.
// It never touches /etc/ldap or the system slapd. Optionally with the
// syncprov overlay on the database (RFC 4533 sync for change notification)
// and with TLS (a throwaway CA and server certificate made with openssl).
#ifndef SPARETIME_TESTS_SLAPD_H_
#define SPARETIME_TESTS_SLAPD_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <string>

#include "testutil/testutil.h"

namespace sparetime::testing {

// Credentials for the ldap* tools; an empty dn means an anonymous simple bind.
struct LdapBind {
  std::string dn;
  std::string password;
};

struct SlapdOptions {
  // Load the syncprov module and put the overlay on the mdb database.
  bool syncprov = false;
  // Generate a CA and a server certificate for 127.0.0.1 and localhost under
  // dir()/tls and configure slapd with them (StartTLS on the ldap:// port).
  bool tls = false;
  // The address slapd listens on (ldap://ADDRESS:PORT; with tls the server
  // certificate names it too). Another address than 127.0.0.1 makes it
  // reachable from hosts of a TestNetwork (see TestNetwork::ConnectTestHost).
  std::string address = "127.0.0.1";
  // Add the suffix entry (dc=example,dc=org) in Init; false leaves the
  // database empty, as a fresh slapd without Debian's postinst has it.
  bool suffix = true;
};

class SlapdServer {
 public:
  // How the sparetime schema and ACLs reach the server.
  enum class ConfigForm {
    // cn=config: base config via slapadd -n0, then conf/ldap/sparetime.ldif
    // with ldapadd -Y EXTERNAL and conf/ldap/acl.ldif with ldapmodify, over
    // ldapi:// — exactly as docs/ldap.md tells admins to.
    kCnConfig,
    // slapd.conf including conf/ldap/sparetime.schema and conf/ldap/acl.conf,
    // checked with slaptest -u and run with slapd -f.
    kSlapdConf,
  };

  static constexpr char kSuffix[] = "dc=example,dc=org";
  static constexpr char kRootDn[] = "cn=admin,dc=example,dc=org";
  static constexpr char kRootPassword[] = "root-secret";

  // True when slapd, slapadd, slaptest and the ldap-utils tools are installed.
  static bool Available();

  // `conf_dir` holds the project's LDAP files (the source tree's conf/ldap).
  SlapdServer(std::string conf_dir, ConfigForm form, SlapdOptions options = {});
  // Stops slapd (SIGTERM, then SIGKILL) and removes every file it used.
  ~SlapdServer();
  SlapdServer(const SlapdServer&) = delete;
  SlapdServer& operator=(const SlapdServer&) = delete;

  // Builds the configuration, starts slapd, loads schema and ACLs and adds the
  // suffix entry. Call once, before anything else.
  ::testing::AssertionResult Init();
  // Starts slapd on the existing configuration and waits (bounded) until it
  // answers. The port is kept across restarts.
  ::testing::AssertionResult Start();
  // Stops slapd and waits for it to exit (bounded, then SIGKILL).
  void Stop();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string uri() const;        // ldap://ADDRESS:PORT
  std::string ldapi_uri() const;  // ldapi://<urlencoded socket path>
  const std::string& dir() const { return dir_.path(); }
  // The CA certificate that signs the server's certificate (options.tls).
  std::string ca_file() const { return dir_ / "tls/ca.pem"; }
  // slapd's stdout/stderr, for failure messages.
  std::string Log() const;

  // Runs an ldap-utils tool (ldapadd, ldapmodify, ldapsearch, ldapdelete...)
  // against uri() with a simple bind, `args` appended as is (shell syntax),
  // `input` fed on stdin. Bounded by a timeout.
  CommandResult Tool(const std::string& tool, const LdapBind& bind, const std::string& args,
                     const std::string& input = "") const;
  // The same, bound as the rootdn.
  CommandResult AsRoot(const std::string& tool, const std::string& args,
                       const std::string& input = "") const;
  // Loads conf/ldap/example-dit.ldif as the rootdn (passwords: alpha-secret,
  // beta-secret, admin-secret).
  ::testing::AssertionResult LoadExampleDit() const;
  // Writes `text` to dir()/`name` with exactly `mode` (a bind password file)
  // and returns its path.
  std::string WriteFile(const std::string& name, const std::string& text, mode_t mode) const;

  // The same over ldapi:// with SASL EXTERNAL (manages cn=config).
  CommandResult AsExternal(const std::string& tool, const std::string& args,
                           const std::string& input = "") const;

 private:
  ::testing::AssertionResult InitCnConfig();
  ::testing::AssertionResult InitSlapdConf();
  ::testing::AssertionResult MakeCertificates();
  ::testing::AssertionResult WaitReady();
  CommandResult RunTool(const std::string& command, const std::string& input) const;

  std::string conf_dir_;
  ConfigForm form_;
  SlapdOptions options_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_SLAPD_H_
