// Checkpoint I/O: a validated, zero-copy safetensors reader (single files and sharded
// Hugging Face checkpoints), a streaming writer whose memory is bounded by the caller's largest
// tensor, and an RAII output transaction that makes "nothing written" the default on any error.
//
// safetensors layout (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N,
// then N bytes of UTF-8 JSON (an object: tensor name -> {"dtype", "shape", "data_offsets":
// [begin, end]} plus an optional "__metadata__" object of string -> string), then the data
// section. data_offsets are relative to the first byte after the header; the tensors must cover
// the data section exactly, without holes or overlap. Every violation is a qf::Error naming the
// file, the tensor when known, the byte offset, and what was expected versus found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/tensor.h"

namespace qf {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  std::string file;         // shard file name, relative to Checkpoint::Directory()
  uint64_t data_begin = 0;  // absolute byte offsets inside `file`: [data_begin, data_end)
  uint64_t data_end = 0;

  uint64_t NumBytes() const { return data_end - data_begin; }
};

// A read-only view of a checkpoint. Open opens every shard O_RDONLY and reads and validates
// the headers (pread; no data is touched). View maps the tensor's bytes PROT_READ on first use
// (zero-copy; pages are read from disk on first touch) and keeps that mapping until
// ReleasePages(info), which unmaps it: both resident memory and address space then follow the
// tensors in flight, not the checkpoint size, so a streaming consumer that releases each tensor
// when done runs under an address-space limit (prlimit --as) far below the checkpoint. Views
// obtained before ReleasePages(info) are invalid after it; View again to re-map. A consumer that
// never releases holds one mapping per viewed tensor (Linux allows 65530 by default). The object
// is movable, not copyable; TensorViews die with it. All const methods may be called from
// several threads at once (mapping is guarded by a mutex), but a thread must not release a
// tensor another thread is still reading.
class Checkpoint {
 public:
  // `path` is either a .safetensors file or a directory holding model.safetensors.index.json
  // (sharded; takes precedence), or model.safetensors, or exactly one *.safetensors file.
  static Checkpoint Open(const std::filesystem::path& path);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  // All tensors of all shards, sorted by name (a stable order independent of the shard layout).
  const std::vector<TensorInfo>& Tensors() const;
  // nullptr when absent.
  const TensorInfo* Find(std::string_view name) const;
  // Zero-copy view of the tensor's bytes (mapped on first use); `info` must describe a tensor of
  // this checkpoint (an entry of Tensors() or a copy of one). Throws qf::Error if mmap fails.
  TensorView View(const TensorInfo& info) const;
  // Unmaps the tensor (its pages leave resident memory and address space). Earlier views of it
  // become invalid; a later View maps it again. A no-op for a tensor not mapped.
  void ReleasePages(const TensorInfo& info) const;

  // The directory holding the shards (the parent directory when Open was given a file).
  const std::filesystem::path& Directory() const;
  // Shard file names relative to Directory(), sorted (one entry when not sharded).
  const std::vector<std::string>& ShardFiles() const;
  // The "__metadata__" object of the first shard (Hugging Face writes the same one to every shard).
  std::map<std::string, std::string> Metadata() const;
  // Sum of all tensors' data bytes (what the index calls metadata.total_size).
  uint64_t TotalBytes() const;

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One tensor the writer will receive.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

struct WriterOptions {
  // Tensor bytes per shard (headers not counted), as Hugging Face's max_shard_size. A shard is
  // closed before a tensor that would push it over; a tensor larger than this gets its own shard.
  uint64_t max_shard_bytes = 5'000'000'000;
  // Added to every shard's "__metadata__" next to {"format": "pt"}.
  std::map<std::string, std::string> metadata;
  // Finish() fsyncs the shards, so a committed output survives a power loss. Off, the bytes reach
  // the disk when the kernel writes them back (as `cp` or Hugging Face's save_pretrained leave
  // them); the output directory is still renamed into place only when complete.
  bool sync_to_disk = true;
};

// Streaming writer. The whole plan is given up front so shard assignment and every header are
// known before any data: the constructor creates the shard files (model.safetensors, or
// model-00001-of-0000N.safetensors when more than one is needed), reserves their full size
// (posix_fallocate: a full disk fails here, before any work) and writes their headers; Write
// places a tensor's bytes at their final offset with pwrite, in any order and from any thread, so
// nothing is buffered. Headers are JSON sorted by name, padded with spaces to a multiple of 8
// bytes; within a shard tensors are contiguous in declared order. Finish() checks that every
// tensor was written exactly once, fsyncs the shards (WriterOptions::sync_to_disk), and writes model.safetensors.index.json when
// there is more than one shard. Write errors (ENOSPC, EFBIG, EIO) throw qf::Error naming the file.
// A writer destroyed without Finish leaves incomplete files; put it inside an OutputTransaction.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::filesystem::path& dir, std::vector<TensorSpec> plan,
                   WriterOptions options = {});
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter();

  // `data` must be exactly NumElements(shape) * DTypeSize(dtype) bytes. Throws qf::Error for an
  // unknown name, a second write of the same name, a size mismatch, or after CancelRequested().
  void Write(std::string_view name, std::span<const std::byte> data);
  void Finish();

  const std::vector<std::string>& ShardFiles() const;
  uint64_t TotalBytes() const;  // sum of tensor data bytes

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// RAII output directory. The constructor refuses an existing `target` unless `overwrite` ("output
// directory X exists (use --overwrite)") and creates the empty sibling `.X.tmp-<pid>`; callers
// write into Dir(). Commit() fsyncs the directory and renames it onto `target`; with overwrite an
// existing target is swapped out only at that moment (renameat2 RENAME_EXCHANGE, then the old
// tree is removed), so a failure before Commit leaves the old output intact. Without Commit the
// destructor removes the temporary directory. Missing parents of `target` are created (and stay).
// Commit throws instead of renaming once CancelRequested().
class OutputTransaction {
 public:
  OutputTransaction(std::filesystem::path target, bool overwrite);
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;
  ~OutputTransaction();

  const std::filesystem::path& Dir() const { return temp_; }
  const std::filesystem::path& Target() const { return target_; }
  void Commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  bool overwrite_ = false;
  bool committed_ = false;
};

// Ctrl-C. Removing directories is not async-signal-safe (it allocates and walks the tree), so the
// CLI's SIGINT/SIGTERM handler only calls RequestCancel() (a lock-free atomic store, safe in a
// handler). CheckpointWriter::Write checks the flag before each tensor and throws qf::Error
// "interrupted", and the unwinding OutputTransaction removes its temporary directory; long loops
// elsewhere may call ThrowIfCancelled() between tensors. RemoveActiveTempDirs() removes the
// temporary directories of all live transactions (for an atexit/std::terminate path, not a
// signal handler).
void RequestCancel() noexcept;
bool CancelRequested() noexcept;
void ResetCancel() noexcept;  // for tests and for a long-lived process
void ThrowIfCancelled();
void RemoveActiveTempDirs() noexcept;

// Copies everything in `from` that is not a safetensors shard or a *.safetensors.index.json
// (config.json, generation_config.json, tokenizer files, *.py, chat_template*, ...) into `to`,
// which must exist. Hidden entries (".cache", ".git") are skipped, symlinks are followed (the
// Hugging Face cache links to blobs), subdirectories are copied recursively. `from` is only read.
void CopyAuxiliaryFiles(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace qf
