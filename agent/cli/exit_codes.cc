// Status -> exit code.
#include "exit_codes.h"

#include <cstdio>
#include <string>

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

int FailAs(const Status& status, ExitCode code) {
  std::string message = status.message();
  if (status.code() == ErrorCode::kNoSpace && message.find(" again") == std::string::npos) {
    message += "; free some space there and run the same command again: it continues where it "
               "stopped";
  }
  std::fprintf(stderr, "sparetime: %s\n", message.c_str());
  return code;
}

int Fail(const Status& status, Stage stage) {
  return FailAs(status, static_cast<ExitCode>(ExitCodeFor(status, stage)));
}

}  // namespace sparetime::cli
