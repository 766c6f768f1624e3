// SlapdServer: runs Debian's slapd for integration tests. Invariants: every
// file lives under one TempDir (config, database, ldapi socket, log); slapd
// runs in the foreground (-d 0) as our child, so we always know its pid and
// reap it; every wait is bounded (kReadyTimeout, kStopTimeout, `timeout` on
// each tool run); the port is chosen once and kept across restarts.
#include "testutil/slapd.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace sparetime::testing {
namespace {

constexpr char kSlapd[] = "/usr/sbin/slapd";
constexpr auto kReadyTimeout = std::chrono::seconds(20);
constexpr auto kStopTimeout = std::chrono::seconds(10);
constexpr int kToolTimeoutSeconds = 30;
constexpr int kStartAttempts = 3;  // another process may grab the free port first

// Asks the kernel for a currently free TCP port on 127.0.0.1.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  return static_cast<bool>(f);
}

std::string UrlEncodePath(const std::string& path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

::testing::AssertionResult Check(const CommandResult& r, const std::string& what) {
  if (r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " failed (exit " << r.exit_code
                                       << "): " << r.err << r.out;
}

// Lets the peer identity of the test process (SASL EXTERNAL over ldapi://)
// manage cn=config, so the documented ldapadd/ldapmodify -Y EXTERNAL work.
std::string PeercredDn() {
  return "gidNumber=" + std::to_string(::getegid()) + "+uidNumber=" +
         std::to_string(::geteuid()) + ",cn=peercred,cn=external,cn=auth";
}

constexpr char kSuffixEntry[] =
    "dn: dc=example,dc=org\n"
    "objectClass: dcObject\n"
    "objectClass: organization\n"
    "dc: example\n"
    "o: Example\n";

}  // namespace

bool SlapdServer::Available() {
  for (const char* tool : {kSlapd, "/usr/sbin/slapadd", "/usr/sbin/slaptest", "/usr/bin/ldapsearch",
                           "/usr/bin/ldapmodify", "/usr/bin/ldapadd"}) {
    if (::access(tool, X_OK) != 0) return false;
  }
  return true;
}

SlapdServer::SlapdServer(std::string conf_dir, ConfigForm form, SlapdOptions options)
    : conf_dir_(std::move(conf_dir)), form_(form), options_(options) {}

SlapdServer::~SlapdServer() { Stop(); }

std::string SlapdServer::uri() const {
  return "ldap://" + options_.address + ":" + std::to_string(port_);
}

std::string SlapdServer::ldapi_uri() const { return "ldapi://" + UrlEncodePath(dir_ / "ldapi"); }

std::string SlapdServer::Log() const { return Slurp(dir_ / "slapd.log"); }

::testing::AssertionResult SlapdServer::Init() {
  if (::mkdir((dir_ / "db").c_str(), 0700) != 0 ||
      (form_ == ConfigForm::kCnConfig && ::mkdir((dir_ / "slapd.d").c_str(), 0700) != 0)) {
    return ::testing::AssertionFailure() << "cannot create directories in " << dir_.path();
  }
  if (options_.tls) {
    ::testing::AssertionResult made = MakeCertificates();
    if (!made) return made;
  }
  ::testing::AssertionResult r =
      form_ == ConfigForm::kCnConfig ? InitCnConfig() : InitSlapdConf();
  if (!r || !options_.suffix) return r;
  return Check(AsRoot("ldapadd", "", kSuffixEntry), "adding the suffix entry " +
                                                         std::string(kSuffix));
}

::testing::AssertionResult SlapdServer::MakeCertificates() {
  const std::string tls = dir_ / "tls";
  if (::mkdir(tls.c_str(), 0700) != 0) {
    return ::testing::AssertionFailure() << "cannot create " << tls;
  }
  // A CA, then a server key and CSR naming 127.0.0.1 and localhost, signed by
  // the CA. EC keys: generated in milliseconds. libldap checks a certificate
  // reached through "localhost" against this machine's own host name (its
  // canonical name too), so those go in as well.
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string names = "IP:127.0.0.1,DNS:localhost";
  if (options_.address != "127.0.0.1") names += ",IP:" + options_.address;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') {
    names += ",DNS:" + std::string(host);
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    addrinfo* info = nullptr;
    if (::getaddrinfo(host, nullptr, &hints, &info) == 0) {
      if (info->ai_canonname != nullptr && std::string(info->ai_canonname) != host) {
        names += ",DNS:" + std::string(info->ai_canonname);
      }
      ::freeaddrinfo(info);
    }
  }
  return Check(
      RunCommand("cd " + ShellQuote(tls) + " && openssl req -x509" + ec +
                 " -keyout ca.key -out ca.pem -days 2 -subj /CN=sparetime-test-ca && "
                 "openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=localhost "
                 "-addext subjectAltName=" + ShellQuote(names) + " && "
                 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out server.pem -days 2 -copy_extensions copy"),
      "generating the test CA and server certificate with openssl");
}

::testing::AssertionResult SlapdServer::InitCnConfig() {
  const std::string tls =
      options_.tls ? "olcTLSCACertificateFile: " + ca_file() + "\nolcTLSCertificateFile: " +
                         dir_ / "tls/server.pem" + "\nolcTLSCertificateKeyFile: " +
                         dir_ / "tls/server.key" + "\n"
                   : std::string();
  std::string config =
      "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: " + dir_ / "slapd.pid" +
      "\n" + tls + "\n"
      "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
      "olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n" +
      (options_.syncprov ? "olcModuleLoad: syncprov\n" : "") + "\n"
      "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
      "include: file:///etc/ldap/schema/core.ldif\n\n"
      "include: file:///etc/ldap/schema/cosine.ldif\n\n"
      "include: file:///etc/ldap/schema/inetorgperson.ldif\n\n"
      "include: file:///etc/ldap/schema/nis.ldif\n\n"
      "dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\n"
      "objectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\n\n"
      "dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n"
      "olcDatabase: {0}config\nolcAccess: {0}to * by dn.exact=" +
      PeercredDn() +
      " manage by * none\n\n"
      "dn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
      "objectClass: olcMdbConfig\nolcDatabase: {1}mdb\nolcDbDirectory: " +
      dir_ / "db" + "\nolcSuffix: " + kSuffix + "\nolcRootDN: " + kRootDn +
      "\nolcRootPW: " + kRootPassword +
      "\nolcDbMaxSize: 104857600\n"
      // The site's own rules, after which acl.ldif inserts the sparetime ones.
      "olcAccess: {0}to * by users read by * none\n";
  if (options_.syncprov) {
    config +=
        "\ndn: olcOverlay=syncprov,olcDatabase={1}mdb,cn=config\nobjectClass: olcOverlayConfig\n"
        "objectClass: olcSyncProvConfig\nolcOverlay: syncprov\n";
  }
  if (!WriteText(dir_ / "config.ldif", config)) {
    return ::testing::AssertionFailure() << "cannot write " << dir_ / "config.ldif";
  }
  ::testing::AssertionResult r =
      Check(RunCommand("/usr/sbin/slapadd -n0 -F " + ShellQuote(dir_ / "slapd.d") + " -l " +
                       ShellQuote(dir_ / "config.ldif")),
            "slapadd -n0 of the base config");
  if (!r || !(r = Start())) return r;
  r = Check(AsExternal("ldapadd", "-f " + ShellQuote(conf_dir_ + "/sparetime.ldif")),
            "ldapadd -Y EXTERNAL -f sparetime.ldif");
  if (!r) return r;
  return Check(AsExternal("ldapmodify", "-f " + ShellQuote(conf_dir_ + "/acl.ldif")),
               "ldapmodify -Y EXTERNAL -f acl.ldif");
}

::testing::AssertionResult SlapdServer::InitSlapdConf() {
  std::string conf =
      "include /etc/ldap/schema/core.schema\n"
      "include /etc/ldap/schema/cosine.schema\n"
      "include /etc/ldap/schema/inetorgperson.schema\n"
      "include /etc/ldap/schema/nis.schema\n"
      "include " + conf_dir_ + "/sparetime.schema\n"
      "pidfile " + dir_ / "slapd.pid" + "\n" +
      (options_.tls ? "TLSCACertificateFile " + ca_file() + "\nTLSCertificateFile " +
                          dir_ / "tls/server.pem" + "\nTLSCertificateKeyFile " +
                          dir_ / "tls/server.key" + "\n"
                    : std::string()) +
      "modulepath /usr/lib/ldap\nmoduleload back_mdb\n" +
      (options_.syncprov ? "moduleload syncprov\n" : "") +
      "database config\naccess to * by dn.exact=\"" + PeercredDn() + "\" manage by * none\n"
      "database mdb\nsuffix \"" + kSuffix + "\"\nrootdn \"" + kRootDn + "\"\nrootpw " +
      kRootPassword + "\ndirectory " + dir_ / "db" + "\nmaxsize 104857600\n"
      "include " + conf_dir_ + "/acl.conf\n"
      "access to * by users read by * none\n" +
      (options_.syncprov ? "overlay syncprov\n" : "");
  if (!WriteText(dir_ / "slapd.conf", conf)) {
    return ::testing::AssertionFailure() << "cannot write " << dir_ / "slapd.conf";
  }
  ::testing::AssertionResult r =
      Check(RunCommand("/usr/sbin/slaptest -u -f " + ShellQuote(dir_ / "slapd.conf")),
            "slaptest -u checking slapd.conf (with sparetime.schema and acl.conf)");
  if (!r) return r;
  return Start();
}

::testing::AssertionResult SlapdServer::Start() {
  if (running()) return ::testing::AssertionFailure() << "slapd is already running";
  const bool fixed_port = port_ != 0;
  ::testing::AssertionResult last = ::testing::AssertionFailure() << "slapd was not started";
  for (int attempt = 0; attempt < (fixed_port ? 1 : kStartAttempts); ++attempt) {
    if (!fixed_port) port_ = FreePort();
    if (port_ == 0) return ::testing::AssertionFailure() << "no free port on 127.0.0.1";
    // Everything the child needs is built before fork(): it only calls
    // async-signal-safe functions.
    const bool cn_config = form_ == ConfigForm::kCnConfig;
    const std::string config = cn_config ? dir_ / "slapd.d" : dir_ / "slapd.conf";
    const std::string urls = uri() + "/ " + ldapi_uri() + "/";
    const std::string log = dir_ / "slapd.log";
    const char* argv[] = {kSlapd, cn_config ? "-F" : "-f", config.c_str(),
                          "-h", urls.c_str(), "-d", "0", nullptr};
    pid_t pid = ::fork();
    if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
      ::execv(kSlapd, const_cast<char* const*>(argv));
      ::_exit(127);
    }
    pid_ = pid;
    last = WaitReady();
    if (last) return last;
    Stop();
  }
  if (!fixed_port) port_ = 0;
  return last;
}

::testing::AssertionResult SlapdServer::WaitReady() {
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "slapd exited during start (status " << status
                                           << "); log " << dir_ / "slapd.log" << ":\n"
                                           << Log();
    }
    CommandResult r = Tool("ldapsearch", {}, "-b '' -s base namingContexts");
    if (r.exit_code == 0) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ::testing::AssertionFailure() << "slapd did not answer on " << uri() << " within "
                                       << kReadyTimeout.count() << " s; log:\n"
                                       << Log();
}

void SlapdServer::Stop() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

CommandResult SlapdServer::RunTool(const std::string& command, const std::string& input) const {
  TempDir tmp;
  if (!WriteText(tmp / "input.ldif", input)) return CommandResult{};
  return RunCommand("timeout " + std::to_string(kToolTimeoutSeconds) + " " + command + " < " +
                    ShellQuote(tmp / "input.ldif"));
}

CommandResult SlapdServer::Tool(const std::string& tool, const LdapBind& bind,
                                const std::string& args, const std::string& input) const {
  std::string cmd = tool + " -o nettimeout=5 -x -H " + ShellQuote(uri());
  if (!bind.dn.empty()) cmd += " -D " + ShellQuote(bind.dn) + " -w " + ShellQuote(bind.password);
  return RunTool(cmd + " " + args, input);
}

CommandResult SlapdServer::AsRoot(const std::string& tool, const std::string& args,
                                  const std::string& input) const {
  return Tool(tool, {kRootDn, kRootPassword}, args, input);
}

::testing::AssertionResult SlapdServer::LoadExampleDit() const {
  return Check(AsRoot("ldapadd", "-f " + ShellQuote(conf_dir_ + "/example-dit.ldif")),
               "loading example-dit.ldif as the rootdn");
}

std::string SlapdServer::WriteFile(const std::string& name, const std::string& text,
                                   mode_t mode) const {
  const std::string path = dir_ / name;
  if (!WriteText(path, text) || ::chmod(path.c_str(), mode) != 0) {
    ADD_FAILURE() << "cannot write " << path;
  }
  return path;
}

CommandResult SlapdServer::AsExternal(const std::string& tool, const std::string& args,
                                      const std::string& input) const {
  return RunTool(tool + " -Q -Y EXTERNAL -H " + ShellQuote(ldapi_uri()) + " " + args, input);
}

}  // namespace sparetime::testing
