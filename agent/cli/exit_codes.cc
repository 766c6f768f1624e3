// Status -> exit code.
#include "exit_codes.h"

#include <cstdio>

namespace sparetime::cli {

int ExitCodeFor(const Status& status, Stage stage) {
  if (stage == Stage::kConfig && !status.ok()) return kExitConfig;
  switch (status.code()) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kAuthFailed: return kExitWrongPassphrase;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kNoSpace: return kExitNoSpace;
    case ErrorCode::kCancelled: return kExitInterrupted;
    case ErrorCode::kUnavailable: return kExitUnavailable;
    default: break;
  }
  if (stage == Stage::kOpenRepository) return kExitNoRepository;
  switch (status.code()) {
    case ErrorCode::kNotFound:
    case ErrorCode::kPermissionDenied:
    case ErrorCode::kFailedPrecondition:
      return kExitDevice;
    case ErrorCode::kCorruption:
      return kExitCorruption;
    default:
      return kExitFailure;
  }
}

int Fail(const Status& status, Stage stage) {
  std::fprintf(stderr, "sparetime: %s\n", status.message().c_str());
  return ExitCodeFor(status, stage);
}

}  // namespace sparetime::cli
