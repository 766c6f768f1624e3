// Status formatting and the errno mapping (the one place errno becomes a code).
#include "sparetime/base/status.h"

#include <cerrno>
#include <cstring>

namespace sparetime {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kIoError: return "I/O error";
    case ErrorCode::kNoSpace: return "no space";
    case ErrorCode::kCorruption: return "corruption";
    case ErrorCode::kAuthFailed: return "authentication failed";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kFailedPrecondition: return "failed precondition";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown";
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(ErrorCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status ErrnoStatus(std::string_view context, int err) {
  std::string m(context);
  m += ": ";
  m += std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENXIO:
    case ENODEV:
      return NotFound(std::move(m));
    case EACCES:
    case EPERM:
    case EROFS:
      return PermissionDenied(std::move(m));
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return NoSpace(std::move(m));
    case EEXIST:
      return AlreadyExists(std::move(m));
    case EINVAL:
      return InvalidArgument(std::move(m));
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ETIMEDOUT:
    case EPIPE:
      return Unavailable(std::move(m));
    default:
      return IoError(std::move(m));
  }
}

}  // namespace sparetime
