// qf::ThreadPool implementation: workers sleep on a condition variable between Runs and pull task
// indices from an atomic counter while a Run is active.
#include "quantforge/thread_pool.h"

namespace qf {

ThreadPool::ThreadPool(size_t num_threads) {
  if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(num_threads - 1);
  for (size_t i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Drain(size_t worker_idx) {
  for (;;) {
    const uint64_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (i >= num_tasks_) return;
    try {
      (*task_)(i, worker_idx);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(num_tasks_, std::memory_order_relaxed);  // skip the rest
    }
  }
}

void ThreadPool::WorkerLoop(size_t worker_idx) {
  uint64_t seen_generation = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen_generation; });
      if (stop_) return;
      seen_generation = generation_;
    }
    Drain(worker_idx);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--num_busy_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::Run(uint64_t num_tasks, const Task& task) {
  if (num_tasks == 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (uint64_t i = 0; i < num_tasks; ++i) task(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    num_tasks_ = num_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    num_busy_ = workers_.size();
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  Drain(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return num_busy_ == 0; });
    task_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ParallelFor(ThreadPool* pool, uint64_t num_tasks, const ThreadPool::Task& task) {
  if (pool != nullptr) {
    pool->Run(num_tasks, task);
    return;
  }
  for (uint64_t i = 0; i < num_tasks; ++i) task(i, 0);
}

}  // namespace qf
