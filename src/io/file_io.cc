// POSIX file helpers: read-only mmap, O_EXCL output files with pwrite/fsync whose errno becomes a
// qf::Error naming the file (disk full included).
#include "src/io/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "quantforge/error.h"

namespace qf::io {

std::string ErrnoMessage(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

InputFile::InputFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error("cannot open for reading: " + ErrnoMessage(errno), {path_});
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error("cannot stat: " + ErrnoMessage(err), {path_});
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error("not a regular file", {path_});
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() { ::close(fd_); }

std::vector<std::byte> InputFile::Read(uint64_t offset, uint64_t length) const {
  QF_CHECK(offset <= size_ && length <= size_ - offset);
  std::vector<std::byte> buffer(length);
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd_, buffer.data() + done, length - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("read failed: " + ErrnoMessage(errno), {path_, {}, offset + done});
    if (n == 0) throw Error("file shrank while reading", {path_, {}, offset + done});
    done += static_cast<size_t>(n);
  }
  return buffer;
}

MappedRange::MappedRange(const InputFile& file, uint64_t begin, uint64_t end,
                         const std::string& tensor) {
  QF_CHECK(begin <= end && end <= file.size());
  if (begin == end) return;
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t aligned = begin / page * page;
  // PROT_READ + MAP_PRIVATE: the input cannot be modified through this mapping.
  void* p = ::mmap(nullptr, end - aligned, PROT_READ, MAP_PRIVATE, file.fd(),
                   static_cast<off_t>(aligned));
  if (p == MAP_FAILED) {
    throw Error("cannot map " + std::to_string(end - begin) + " bytes: " + ErrnoMessage(errno),
                {file.path(), tensor, begin});
  }
  base_ = static_cast<std::byte*>(p);
  length_ = end - aligned;
  skew_ = begin - aligned;
  size_ = end - begin;
}

MappedRange::MappedRange(MappedRange&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      length_(other.length_),
      skew_(other.skew_),
      size_(std::exchange(other.size_, 0)) {}

MappedRange& MappedRange::operator=(MappedRange&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, length_);
    base_ = std::exchange(other.base_, nullptr);
    length_ = other.length_;
    skew_ = other.skew_;
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedRange::~MappedRange() {
  if (base_ != nullptr) ::munmap(base_, length_);
}

std::span<const std::byte> MappedRange::bytes() const {
  return base_ == nullptr ? std::span<const std::byte>() : std::span<const std::byte>(base_ + skew_, size_);
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot create: " + ErrnoMessage(errno), {path_});
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::Reserve(uint64_t num_bytes) {
  if (num_bytes == 0) return;
  const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(num_bytes));
  // EOPNOTSUPP/EINVAL: no fallocate here (glibc then emulates or refuses); writes report later.
  if (err == ENOSPC || err == EFBIG || err == EDQUOT || err == EIO) {
    throw Error("cannot reserve " + std::to_string(num_bytes) + " bytes: " + ErrnoMessage(err),
                {path_});
  }
}

void OutputFile::WriteAt(uint64_t offset, std::span<const std::byte> data,
                         const std::string& tensor) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // pwrite returning 0 for a non-empty request means no progress is possible: report ENOSPC.
      const int err = n < 0 ? errno : ENOSPC;
      throw Error("write of " + std::to_string(data.size()) + " bytes failed: " + ErrnoMessage(err),
                  {path_, tensor, offset + done});
    }
    done += static_cast<size_t>(n);
  }
}

void OutputFile::Sync() {
  if (::fsync(fd_) != 0) throw Error("fsync failed: " + ErrnoMessage(errno), {path_});
}

void OutputFile::Close() {
  if (fd_ < 0) return;
  const int rc = ::close(std::exchange(fd_, -1));
  if (rc != 0 && errno != EINTR) throw Error("close failed: " + ErrnoMessage(errno), {path_});
}

void CopyFileContents(const std::string& from, const std::string& to) {
  const int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open for reading: " + ErrnoMessage(errno), {from});
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error("cannot stat: " + ErrnoMessage(errno), {from});
  OutputFile out(to);
  out.Reserve(static_cast<uint64_t>(st.st_size));
  std::vector<std::byte> buffer(1 << 20);
  uint64_t offset = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("read failed: " + ErrnoMessage(errno), {from, {}, offset});
    if (n == 0) break;
    out.WriteAt(offset, std::span(buffer.data(), static_cast<size_t>(n)));
    offset += static_cast<uint64_t>(n);
  }
  out.Close();
}

void WriteSmallFile(const std::string& path, std::string_view contents) {
  OutputFile file(path);
  file.WriteAt(0, std::as_bytes(std::span<const char>(contents.data(), contents.size())));
  file.Sync();
  file.Close();
}

void SyncDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open directory: " + ErrnoMessage(errno), {path});
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error("fsync of directory failed: " + ErrnoMessage(err), {path});
}

}  // namespace qf::io
