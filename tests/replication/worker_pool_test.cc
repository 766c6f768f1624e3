// WorkerPool (base/worker_pool.h), the pool PeerSet runs its per-peer work
// on: more tasks than threads never run more than the maximum at once nor
// start more threads, every task runs exactly once, and RunAll waits for all.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sparetime/base/worker_pool.h"

namespace sparetime {
namespace {

TEST(WorkerPoolTest, MoreTasksThanThreadsStayWithinTheBound) {
  WorkerPool pool(3);
  std::atomic<int> running{0}, most{0}, ran{0};
  std::vector<std::function<void()>> tasks;
  for (int i = 0; i < 12; ++i) {
    tasks.push_back([&] {
      int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      --running;
      ++ran;
    });
  }
  pool.RunAll(std::move(tasks));
  EXPECT_EQ(ran.load(), 12);      // RunAll returned after every task
  EXPECT_EQ(running.load(), 0);
  EXPECT_EQ(most.load(), 3);      // 12 sleeping tasks fill all three threads, never a fourth
  EXPECT_EQ(pool.threads_started(), 3u);
  // A second round reuses the same threads.
  std::vector<std::function<void()>> more(5, [&] { ++ran; });
  pool.RunAll(std::move(more));
  EXPECT_EQ(ran.load(), 17);
  EXPECT_EQ(pool.threads_started(), 3u);
}

TEST(WorkerPoolTest, ConcurrentRunAllCallersEachWaitForTheirOwnTasks) {
  WorkerPool pool(2);
  std::atomic<int> a{0}, b{0};
  std::thread other([&] {
    std::vector<std::function<void()>> tasks(20, [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ++a;
    });
    pool.RunAll(std::move(tasks));
    EXPECT_EQ(a.load(), 20);
  });
  std::vector<std::function<void()>> tasks(20, [&] { ++b; });
  pool.RunAll(std::move(tasks));
  EXPECT_EQ(b.load(), 20);
  other.join();
  EXPECT_EQ(a.load(), 20);
  EXPECT_LE(pool.threads_started(), 2u);
}

TEST(WorkerPoolTest, DestructorRunsWhatIsQueuedAndZeroMeansOne) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(0);
    EXPECT_EQ(pool.max_threads(), 1u);
    for (int i = 0; i < 10; ++i) {
      pool.Submit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ++ran;
      });
    }
  }
  EXPECT_EQ(ran.load(), 10);
}

}  // namespace
}  // namespace sparetime
