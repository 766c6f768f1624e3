// The stop signals of the agent's processes (sparetime and sparetimed):
// SIGINT and SIGTERM go to `on_stop` (which sets a stop flag: async-signal
// safe work only), and SIGPIPE is ignored — a peer or LDAP server that hangs
// up must be an error, not a kill (libldap and sockets write with plain
// write(2)).
#ifndef SPARETIME_OPS_SIGNALS_H_
#define SPARETIME_OPS_SIGNALS_H_

namespace sparetime::ops {

void InstallStopSignals(void (*on_stop)(int));

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_SIGNALS_H_
