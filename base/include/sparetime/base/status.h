// Status and Result<T>: how every sparetime library reports failure.
//
// A Status is either OK or an error code plus a human message that says what
// failed and, where it helps, what to do about it. Result<T> holds either a T
// or a non-OK Status (abseil StatusOr rules: it can never hold "OK with no
// value"; reading the value of an error Result aborts). Both are
// [[nodiscard]]. Exceptions are not used inside the libraries; each main()
// maps the codes below to documented exit codes.
//
// Thread safety: values, no shared state.
#ifndef SPARETIME_BASE_STATUS_H_
#define SPARETIME_BASE_STATUS_H_

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sparetime {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,     // bad input from the caller or the user
  kNotFound,            // a file, device, snapshot or chunk does not exist
  kAlreadyExists,       // refusing to overwrite something
  kPermissionDenied,    // EACCES/EPERM/EROFS
  kIoError,             // the OS said no (other errno values)
  kNoSpace,             // ENOSPC/EDQUOT, or a quota
  kCorruption,          // stored data fails its checks
  kAuthFailed,          // wrong passphrase / key
  kUnavailable,         // a peer or server is unreachable
  kFailedPrecondition,  // the state does not allow this (e.g. target too small)
  kCancelled,           // the caller asked us to stop
  kInternal,            // a bug
};

// Name of a code, e.g. "corruption".
std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message".
  Status WithContext(std::string_view context) const;
  // "code: message", or "ok".
  std::string ToString() const;

  // Explicitly drop a Status whose failure does not matter (cleanup paths).
  void IgnoreError() const {}

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {ErrorCode::kPermissionDenied, std::move(m)}; }
inline Status IoError(std::string m) { return {ErrorCode::kIoError, std::move(m)}; }
inline Status NoSpace(std::string m) { return {ErrorCode::kNoSpace, std::move(m)}; }
inline Status Corruption(std::string m) { return {ErrorCode::kCorruption, std::move(m)}; }
inline Status AuthFailed(std::string m) { return {ErrorCode::kAuthFailed, std::move(m)}; }
inline Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {ErrorCode::kFailedPrecondition, std::move(m)}; }
inline Status Cancelled(std::string m) { return {ErrorCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

// The one place errno values become Status codes: "context: strerror(err)".
Status ErrnoStatus(std::string_view context, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok(). An OK status without a value is a bug and aborts.
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit on purpose
    if (std::get<0>(v_).ok()) std::abort();
  }
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Status>)
  Result(U&& value) : v_(std::in_place_index<1>, std::forward<U>(value)) {}  // NOLINT

  bool ok() const { return v_.index() == 1; }
  bool has_value() const { return ok(); }
  explicit operator bool() const { return ok(); }

  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<0>(v_); }
  const Status& error() const {
    if (ok()) std::abort();
    return std::get<0>(v_);
  }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T&& operator*() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

 private:
  T& checked() {
    if (!ok()) std::abort();
    return std::get<1>(v_);
  }
  std::variant<Status, T> v_;
};

}  // namespace sparetime

#define ST_CONCAT_INNER_(a, b) a##b
#define ST_CONCAT_(a, b) ST_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define ST_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    ::sparetime::Status st_status_ = (expr);            \
    if (!st_status_.ok()) return st_status_;            \
  } while (0)

// `lhs = value of expr`, or return its error from the enclosing function.
#define ST_ASSIGN_OR_RETURN(lhs, expr) \
  ST_ASSIGN_OR_RETURN_IMPL_(ST_CONCAT_(st_result_, __LINE__), lhs, expr)
#define ST_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.error();              \
  lhs = std::move(tmp).value()

#endif  // SPARETIME_BASE_STATUS_H_
