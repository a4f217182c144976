// qf::ThreadPool: a fixed set of worker threads that run `num_tasks` independent tasks.
//
// Shaped like gemma.cpp's pool: Run(num_tasks, func(task_idx, worker_idx)) blocks until every task
// ran once. Tasks are handed out dynamically (an atomic counter), so which worker runs a task varies
// between runs; results must therefore depend on task_idx only. worker_idx (< NumWorkers()) selects
// per-worker scratch memory. The calling thread works too, as worker 0. Created once (in main) and
// passed down; Run must not be nested.
//
// Determinism rule for callers: partition work by data size (never by thread count) and combine
// partial results in task order. Then 1 thread and N threads give the same bytes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qf {

class ThreadPool {
 public:
  using Task = std::function<void(uint64_t task_idx, size_t worker_idx)>;

  // num_threads == 0 means "all hardware threads". 1 runs everything on the caller.
  explicit ThreadPool(size_t num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t NumWorkers() const { return workers_.size() + 1; }

  // Runs task(i, worker) for every i in [0, num_tasks). The first exception thrown by a task is
  // rethrown here after all workers stopped; remaining tasks are skipped.
  void Run(uint64_t num_tasks, const Task& task);

 private:
  void WorkerLoop(size_t worker_idx);
  void Drain(size_t worker_idx);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const Task* task_ = nullptr;
  uint64_t num_tasks_ = 0;
  std::atomic<uint64_t> next_task_{0};
  uint64_t generation_ = 0;
  size_t num_busy_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// Runs on `pool` when given, else inline on the caller (worker 0).
void ParallelFor(ThreadPool* pool, uint64_t num_tasks, const ThreadPool::Task& task);

// Splits [0, total) into tasks of `grain` items (the last one shorter). The split depends on the
// sizes only, never on the thread count.
struct Partition {
  uint64_t total = 0;
  uint64_t grain = 1;
  uint64_t NumTasks() const { return grain == 0 ? 0 : (total + grain - 1) / grain; }
  uint64_t Begin(uint64_t task_idx) const { return task_idx * grain; }
  uint64_t End(uint64_t task_idx) const {
    const uint64_t end = (task_idx + 1) * grain;
    return end < total ? end : total;
  }
};

}  // namespace qf
