// AgentProcess: a real `sparetimed` running in the background for
// integration tests (optionally inside a network namespace), with its
// output in a log file. The destructor stops it: SIGTERM, then SIGKILL after
// a bounded wait.
#ifndef SPARETIME_TESTS_AGENT_PROCESS_H_
#define SPARETIME_TESTS_AGENT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace sparetime::testing {

class AgentProcess {
 public:
  // Starts `sparetimed --config config_path`; `netns` non-empty runs it with
  // `ip netns exec NETNS`.
  // `wrapper` non-empty runs `WRAPPER... sparetimed --config ...` instead
  // (e.g. {"unshare", "--pid", "--fork", "--kill-child"}).
  AgentProcess(std::string config_path, std::string log_path, std::string netns = "",
               std::vector<std::string> wrapper = {});
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends SIGTERM and waits up to `timeout`; returns the exit code, or -1
  // when it had to be killed or died by a signal.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits up to `timeout` for it to exit by itself: its exit code, -1 when a
  // signal killed it, -2 when it is still running.
  int WaitExit(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Writes <dir>/<name>.conf for an agent named `name` with state in
// <dir>/state-<name>, a 1 s heartbeat, 1 GiB offered, the LDIF file
// directory `ldif` (base ou=sparetime,dc=example,dc=org) polled every 200 ms.
// `agent_extra` lines go into [agent]. Returns the path.
std::string WriteAgentConfig(const std::string& dir, const std::string& name,
                             const std::string& ldif, const std::string& listen,
                             const std::string& agent_extra = "");

// The example DIT (conf/ldap/example-dit.ldif) written to `path` as a file
// directory; `without_keys` drops the agents' keys, as when an admin enrols
// hosts before they first start (each agent then publishes its own).
void WriteExampleDirectory(const std::string& path, bool without_keys);

// LDIF for a file directory under ou=sparetime,dc=example,dc=org: the
// ou=sparetime, ou=agents and ou=policies entries, then one enrolled agent
// entry (no key: each agent publishes its own) per host, with
// `agent_lines(host)` appended to it (e.g. a site or a password).
std::string DomainLdif(const std::vector<std::string>& hosts,
                       const std::function<std::string(const std::string&)>& agent_lines = {});

// Polls `condition` every 50 ms until it is true or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_AGENT_PROCESS_H_
