// ThreadPool: every task runs exactly once, exceptions propagate, pools are reusable.
#include "quantforge/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace qf {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskOnce) {
  for (size_t threads : {1u, 2u, 4u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.NumWorkers(), threads);
    std::vector<std::atomic<int>> hits(1000);
    for (int rep = 0; rep < 3; ++rep) {
      pool.Run(hits.size(), [&](uint64_t task, size_t worker) {
        EXPECT_LT(worker, threads);
        hits[task].fetch_add(1);
      });
    }
    for (auto& h : hits) EXPECT_EQ(h.load(), 3);
  }
}

TEST(ThreadPoolTest, ZeroTasksIsANoOp) {
  ThreadPool pool(2);
  pool.Run(0, [](uint64_t, size_t) { FAIL(); });
}

TEST(ThreadPoolTest, RethrowsTaskException) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.Run(100,
                        [](uint64_t task, size_t) {
                          if (task == 42) throw std::runtime_error("task 42");
                        }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> count{0};
  pool.Run(10, [&](uint64_t, size_t) { count++; });
  EXPECT_EQ(count.load(), 10);
}

TEST(ThreadPoolTest, PartitionDependsOnSizesOnly) {
  Partition p{.total = 10, .grain = 4};
  ASSERT_EQ(p.NumTasks(), 3u);
  EXPECT_EQ(p.Begin(2), 8u);
  EXPECT_EQ(p.End(2), 10u);
  EXPECT_EQ((Partition{.total = 0, .grain = 4}).NumTasks(), 0u);
}

TEST(ThreadPoolTest, ParallelForWithoutPoolRunsInline) {
  std::vector<int> order;
  ParallelFor(nullptr, 5, [&](uint64_t task, size_t worker) {
    EXPECT_EQ(worker, 0u);
    order.push_back(static_cast<int>(task));
  });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace qf
