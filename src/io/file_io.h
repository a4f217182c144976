// POSIX file helpers for the io layer: a read-only memory map, an owned file descriptor, and
// write/fsync wrappers that turn every errno (ENOSPC, EFBIG, EIO, ...) into a qf::Error naming
// the file, so disk-full surfaces as a message instead of a short file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace qf::io {

// "No space left on device (errno 28)".
std::string ErrnoMessage(int err);

// Read-only, private mapping of a whole file (PROT_READ, so the input can never be modified
// through it). An empty file maps to an empty span.
class MappedFile {
 public:
  explicit MappedFile(std::string path);
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // madvise(MADV_DONTNEED) on the whole pages inside [begin, end); best effort.
  void ReleasePages(uint64_t begin, uint64_t end) const;

 private:
  std::string path_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
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
