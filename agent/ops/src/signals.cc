// InstallStopSignals (see signals.h).
#include "sparetime/ops/signals.h"

#include <signal.h>

namespace sparetime::ops {

void InstallStopSignals(void (*on_stop)(int)) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

}  // namespace sparetime::ops
