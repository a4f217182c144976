// POSIX file helpers for the io layer: read-only input files and mapped ranges, output files, and
// write/fsync wrappers that turn every errno (ENOSPC, EFBIG, EIO, ...) into a qf::Error naming
// the file, so disk-full surfaces as a message instead of a short file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace qf::io {

// "No space left on device (errno 28)".
std::string ErrnoMessage(int err);

// An input file opened O_RDONLY (so the input can never be modified through us). Regions are
// read with pread (headers) or mapped on demand (tensor data, MappedRange).
class InputFile {
 public:
  explicit InputFile(std::string path);
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  // Reads [offset, offset + length), which the caller has checked against size().
  std::vector<std::byte> Read(uint64_t offset, uint64_t length) const;
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// [begin, end) of a file mapped PROT_READ / MAP_PRIVATE from the page below `begin`; unmapped
// (address space and resident pages returned) on destruction. Empty ranges map nothing.
class MappedRange {
 public:
  MappedRange() = default;
  MappedRange(const InputFile& file, uint64_t begin, uint64_t end, const std::string& tensor);
  MappedRange(MappedRange&& other) noexcept;
  MappedRange& operator=(MappedRange&& other) noexcept;
  MappedRange(const MappedRange&) = delete;
  MappedRange& operator=(const MappedRange&) = delete;
  ~MappedRange();

  std::span<const std::byte> bytes() const;
  bool mapped() const { return base_ != nullptr; }

 private:
  std::byte* base_ = nullptr;  // page-aligned start of the mapping
  size_t length_ = 0;          // mapping length
  size_t skew_ = 0;            // begin - page-aligned begin
  size_t size_ = 0;            // end - begin
};

// Owned descriptor of a file being written.
class OutputFile {
 public:
  // O_WRONLY | O_CREAT | O_EXCL: never truncates or follows into an existing file.
  explicit OutputFile(std::string path);
  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  // Reserves `num_bytes` so a full disk fails here, before any work (ENOSPC). File systems
  // without fallocate are tolerated: the writes then report ENOSPC themselves.
  void Reserve(uint64_t num_bytes);
  // pwrite until done; retries EINTR and short writes. Thread-safe for disjoint ranges.
  void WriteAt(uint64_t offset, std::span<const std::byte> data, const std::string& tensor = {});
  void Sync();
  void Close();  // fsync is separate; close errors (NFS) are reported too
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Copies the contents of `from` (following symlinks) into the new file `to` through a 1 MiB
// buffer. Done by hand because libstdc++'s copy_file (sendfile) reports a full disk as EIO.
void CopyFileContents(const std::string& from, const std::string& to);
// Writes a whole small file (index, JSON) with O_EXCL and fsyncs it.
void WriteSmallFile(const std::string& path, std::string_view contents);
// fsync of a directory, so renames and new entries inside it are durable.
void SyncDirectory(const std::string& path);

}  // namespace qf::io
