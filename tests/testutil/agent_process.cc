// AgentProcess: fork + exec of the sparetimed binary (SPARETIME_DAEMON),
// bounded stop.
#include "testutil/agent_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace sparetime::testing {

AgentProcess::AgentProcess(std::string config_path, std::string log_path, std::string netns,
                           std::vector<std::string> wrapper)
    : log_path_(std::move(log_path)) {
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (!wrapper.empty()) {
      wrapper.insert(wrapper.end(), {SPARETIME_DAEMON, "--config", config_path});
      std::vector<char*> argv;
      for (std::string& a : wrapper) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
    } else if (netns.empty()) {
      ::execl(SPARETIME_DAEMON, SPARETIME_DAEMON, "--config", config_path.c_str(), nullptr);
    } else {
      ::execlp("ip", "ip", "netns", "exec", netns.c_str(), SPARETIME_DAEMON, "--config",
               config_path.c_str(), nullptr);
    }
    ::_exit(127);
  }
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) Stop();
}

int AgentProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -2;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int AgentProcess::Stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int code = WaitExit(timeout);
  if (code != -2) return code;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

std::string AgentProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WriteAgentConfig(const std::string& dir, const std::string& name,
                             const std::string& ldif, const std::string& listen,
                             const std::string& agent_extra) {
  std::string path = dir + "/" + name + ".conf";
  std::ofstream out(path, std::ios::trunc);
  out << "[agent]\nname = " << name << "\nlisten = " << listen << "\nstate_dir = " << dir
      << "/state-" << name << "\nheartbeat = 1s\n"
      << agent_extra << "\n[storage]\ncapacity = 1G\n\n[directory]\nuri = file://" << ldif
      << "\nbase = ou=sparetime,dc=example,dc=org\npoll_interval = 200ms\n";
  return path;
}

void WriteExampleDirectory(const std::string& path, bool without_keys) {
  std::ifstream in(std::string(SPARETIME_SOURCE_DIR) + "/conf/ldap/example-dit.ldif");
  std::ofstream out(path, std::ios::trunc);
  for (std::string line; std::getline(in, line);) {
    if (without_keys && line.starts_with("sparetimePublicKey:")) continue;
    out << line << "\n";
  }
}

std::string DomainLdif(const std::vector<std::string>& hosts,
                       const std::function<std::string(const std::string&)>& agent_lines) {
  std::string out =
      "dn: ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: sparetime\n\n"
      "dn: ou=agents,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\n"
      "ou: agents\n\n"
      "dn: ou=policies,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\n"
      "ou: policies\n\n";
  for (const std::string& host : hosts) {
    out += "dn: cn=" + host + ",ou=agents,ou=sparetime,dc=example,dc=org\n" +
           "objectClass: sparetimeAgent\ncn: " + host + "\n" +
           (agent_lines ? agent_lines(host) : std::string()) + "\n";
  }
  return out;
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace sparetime::testing
