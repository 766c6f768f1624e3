// TokenBucket: the long-run rate, the burst, oversized requests, rate
// changes, unlimited mode and stopping a waiter, with a fake clock; and
// concurrent use with the real clock.
#include "sparetime/base/token_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "testutil/fake_clock.h"

namespace sparetime {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::FakeClock;

double SecondsSince(const FakeClock& clock, steady_clock::time_point start) {
  return std::chrono::duration<double>(clock.MonoNow() - start).count();
}

TEST(TokenBucket, BurstGoesAtOnceThenTheRateHolds) {
  FakeClock clock;
  TokenBucket bucket(1000, 500, clock);
  auto start = clock.MonoNow();
  bucket.Acquire(500);  // the full bucket
  EXPECT_EQ(clock.MonoNow(), start);
  for (int i = 0; i < 10; ++i) bucket.Acquire(100);  // 1000 bytes at 1000 B/s
  EXPECT_NEAR(SecondsSince(clock, start), 1.0, 0.01);
}

TEST(TokenBucket, DefaultBurstIsOneSecond) {
  FakeClock clock;
  TokenBucket bucket(4096, 0, clock);
  auto start = clock.MonoNow();
  bucket.Acquire(4096);
  EXPECT_EQ(clock.MonoNow(), start);
  bucket.Acquire(1024);
  EXPECT_NEAR(SecondsSince(clock, start), 0.25, 0.01);
}

TEST(TokenBucket, IdleTimeRefillsOnlyUpToTheBurst) {
  FakeClock clock;
  TokenBucket bucket(1000, 200, clock);
  bucket.Acquire(200);
  clock.Advance(std::chrono::seconds(60));  // would be 60000 tokens without the cap
  auto start = clock.MonoNow();
  bucket.Acquire(200);
  EXPECT_EQ(clock.MonoNow(), start);
  bucket.Acquire(200);
  EXPECT_NEAR(SecondsSince(clock, start), 0.2, 0.01);
}

TEST(TokenBucket, OversizedRequestPassesAndLeavesADebt) {
  FakeClock clock;
  TokenBucket bucket(1000, 100, clock);
  auto start = clock.MonoNow();
  bucket.Acquire(1100);  // more than the burst: goes once the bucket is full
  EXPECT_EQ(clock.MonoNow(), start);
  bucket.Acquire(100);  // waits out the 1000-byte debt and its own 100 bytes
  EXPECT_NEAR(SecondsSince(clock, start), 1.1, 0.01);
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  FakeClock clock;
  TokenBucket bucket(0, 0, clock);
  auto start = clock.MonoNow();
  for (int i = 0; i < 1000; ++i) bucket.Acquire(1 << 30);
  EXPECT_EQ(clock.MonoNow(), start);
  EXPECT_EQ(bucket.rate(), 0u);
}

TEST(TokenBucket, SetRateChangesTheRate) {
  FakeClock clock;
  TokenBucket bucket(1000, 100, clock);
  bucket.Acquire(100);
  bucket.set_rate(100);
  EXPECT_EQ(bucket.rate(), 100u);
  auto start = clock.MonoNow();
  bucket.Acquire(100);
  EXPECT_NEAR(SecondsSince(clock, start), 1.0, 0.01);

  bucket.set_rate(0);
  start = clock.MonoNow();
  bucket.Acquire(1 << 20);
  EXPECT_EQ(clock.MonoNow(), start);

  bucket.set_rate(1000);  // from unlimited back to limited: no stored burst
  start = clock.MonoNow();
  bucket.Acquire(100);
  EXPECT_NEAR(SecondsSince(clock, start), 0.1, 0.01);
}

TEST(TokenBucket, WaitsInBoundedSlices) {
  // A clock that records each sleep.
  class RecordingClock final : public Clock {
   public:
    std::chrono::system_clock::time_point WallNow() const override { return inner.WallNow(); }
    steady_clock::time_point MonoNow() const override { return inner.MonoNow(); }
    void SleepFor(std::chrono::nanoseconds d) const override {
      sleeps.push_back(d);
      inner.SleepFor(d);
    }
    FakeClock inner;
    mutable std::vector<std::chrono::nanoseconds> sleeps;
  } clock;
  TokenBucket bucket(10, 10, clock);
  bucket.Acquire(10);
  bucket.Acquire(10);  // one second of waiting
  ASSERT_GE(clock.sleeps.size(), 10u);
  for (auto d : clock.sleeps) EXPECT_LE(d, TokenBucket::kMaxSlice);
}

TEST(TokenBucket, StopRequestEndsTheWaitWithoutTakingTokens) {
  FakeClock clock;
  TokenBucket bucket(100, 100, clock);
  std::stop_source stop;
  EXPECT_TRUE(bucket.Acquire(100, stop.get_token()));
  stop.request_stop();
  auto start = clock.MonoNow();
  EXPECT_FALSE(bucket.Acquire(100, stop.get_token()));
  EXPECT_EQ(clock.MonoNow(), start);
  // Nothing was taken: after one second the bucket is full again.
  clock.Advance(std::chrono::seconds(1));
  start = clock.MonoNow();
  EXPECT_TRUE(bucket.Acquire(100, std::stop_token()));
  EXPECT_EQ(clock.MonoNow(), start);
}

TEST(TokenBucket, StopRequestFromAnotherThreadWakesAWaiter) {
  TokenBucket bucket(1, 1, SystemClock());
  bucket.Acquire(1);
  std::stop_source stop;
  std::atomic<bool> result{true};
  auto begin = steady_clock::now();
  std::thread waiter([&] { result = bucket.Acquire(1000, stop.get_token()); });
  std::this_thread::sleep_for(milliseconds(50));
  stop.request_stop();
  waiter.join();
  EXPECT_FALSE(result.load());
  EXPECT_LT(steady_clock::now() - begin, milliseconds(50) + 3 * TokenBucket::kMaxSlice);
}

TEST(TokenBucket, ThreadsShareTheRate) {
  // 4 threads x 25 x 1000 bytes at 200 kB/s with a 20 kB burst: >= 0.4 s.
  TokenBucket bucket(200000, 20000, SystemClock());
  auto begin = steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) bucket.Acquire(1000);
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(steady_clock::now() - begin).count();
  EXPECT_GE(seconds, 0.39);
  EXPECT_LT(seconds, 5.0);
}

}  // namespace
}  // namespace sparetime
