#include "sparetime/base/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>

namespace sparetime {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ST_ASSIGN_OR_RETURN(int h, Half(x));
  ST_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFound("disk /dev/x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.ToString(), "not found: disk /dev/x");
  EXPECT_EQ(s.WithContext("backup").message(), "backup: disk /dev/x");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

TEST(Status, ErrnoMapping) {
  EXPECT_EQ(ErrnoStatus("open a", ENOENT).code(), ErrorCode::kNotFound);
  EXPECT_EQ(ErrnoStatus("open a", EACCES).code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus("open a", EROFS).code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus("write", ENOSPC).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrnoStatus("read", EIO).code(), ErrorCode::kIoError);
  EXPECT_NE(ErrnoStatus("open a", ENOENT).message().find("open a: "), std::string::npos);
}

TEST(Result, ValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "3 is odd");
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultDeathTest, OkStatusWithoutValueAborts) {
  EXPECT_DEATH({ Result<int> r(Status::Ok()); (void)r; }, "");
}

TEST(ResultDeathTest, ReadingTheValueOfAnErrorAborts) {
  EXPECT_DEATH({ Result<int> r(Internal("x")); (void)*r; }, "");
}

}  // namespace
}  // namespace sparetime
