// qf::OutputTransaction (temp sibling directory, renamed into place on Commit), the Ctrl-C
// cancel flag, and the registry of live temporary directories.
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "src/io/file_io.h"

namespace qf {

namespace fs = std::filesystem;

namespace {

// Lock-free so that RequestCancel may run inside a signal handler.
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free);

// Temporary directories of live transactions, for RemoveActiveTempDirs.
std::mutex g_registry_mutex;
std::set<fs::path> g_registry;

void Register(const fs::path& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_registry.insert(dir);
}

void Unregister(const fs::path& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_registry.erase(dir);
}

// rename that never replaces an existing target (RENAME_NOREPLACE), or atomically swaps two
// existing entries (RENAME_EXCHANGE). Returns errno, 0 on success.
int Rename2(const fs::path& from, const fs::path& to, unsigned flags) {
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags) == 0 ? 0 : errno;
}

// ".name<suffix>-<pid>" next to `target`. Built with += because g++ 12 raises a false
// -Wrestrict on `"." + std::string`.
fs::path HiddenSibling(const fs::path& target, const char* suffix) {
  std::string name = ".";
  name += target.filename().string();
  name += suffix;
  name += std::to_string(::getpid());
  return (target.has_parent_path() ? target.parent_path() : fs::path(".")) / name;
}

}  // namespace

void RequestCancel() noexcept { g_cancel.store(true, std::memory_order_relaxed); }
bool CancelRequested() noexcept { return g_cancel.load(std::memory_order_relaxed); }
void ResetCancel() noexcept { g_cancel.store(false, std::memory_order_relaxed); }

void ThrowIfCancelled() {
  if (CancelRequested()) throw Error("interrupted (Ctrl-C); no output was written");
}

void RemoveActiveTempDirs() noexcept {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  for (const fs::path& dir : g_registry) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

OutputTransaction::OutputTransaction(fs::path target, bool overwrite)
    : target_(std::move(target)), overwrite_(overwrite) {
  if (!target_.has_filename()) target_ = target_.parent_path();  // "out/" -> "out"
  if (target_.empty() || target_.filename() == "." || target_.filename() == "..") {
    throw Error("output directory needs a name", {target_.string()});
  }
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(target_, ec);
  if (fs::exists(status)) {
    if (!overwrite_) {
      throw Error("output directory " + target_.string() + " exists (use --overwrite)",
                  {target_.string()});
    }
    if (!fs::is_directory(status)) {
      throw Error("output path exists and is not a directory; refusing to replace it",
                  {target_.string()});
    }
  }
  const fs::path parent = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create parent directory: " + ec.message(), {parent.string()});
  temp_ = HiddenSibling(target_, ".tmp-");
  // A leftover with our own pid can only come from an earlier crashed process: ours to clear.
  fs::remove_all(temp_, ec);
  if (!fs::create_directory(temp_, ec) || ec) {
    throw Error("cannot create temporary directory: " + (ec ? ec.message() : "exists"),
                {temp_.string()});
  }
  Register(temp_);
}

OutputTransaction::~OutputTransaction() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  Unregister(temp_);
}

void OutputTransaction::Commit() {
  QF_CHECK(!committed_);
  ThrowIfCancelled();
  io::SyncDirectory(temp_.string());
  const fs::path parent = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  int err = Rename2(temp_, target_, RENAME_NOREPLACE);
  if (err == EEXIST && overwrite_) {
    // Swap new and old in one step, so the target always names a complete directory; the old
    // tree then sits at temp_ and is removed.
    err = Rename2(temp_, target_, RENAME_EXCHANGE);
    if (err == EINVAL || err == ENOSYS) {
      // File system without RENAME_EXCHANGE: move the old one aside first (a short window in
      // which the target does not exist).
      const fs::path old = HiddenSibling(target_, ".old-");
      std::error_code ec;
      fs::remove_all(old, ec);
      err = ::rename(target_.c_str(), old.c_str()) == 0 ? 0 : errno;
      if (err == 0) err = ::rename(temp_.c_str(), target_.c_str()) == 0 ? 0 : errno;
      if (err == 0) fs::remove_all(old, ec);
    } else if (err == 0) {
      std::error_code ec;
      fs::remove_all(temp_, ec);
    }
  } else if (err == EINVAL || err == ENOSYS) {
    // No RENAME_NOREPLACE: plain rename (which fails on a non-empty existing directory).
    err = ::rename(temp_.c_str(), target_.c_str()) == 0 ? 0 : errno;
  }
  if (err == EEXIST || err == ENOTEMPTY) {
    throw Error("output directory " + target_.string() + " exists (use --overwrite)",
                {target_.string()});
  }
  if (err != 0) {
    throw Error("cannot rename " + temp_.string() + " to " + target_.string() + ": " +
                    io::ErrnoMessage(err),
                {target_.string()});
  }
  committed_ = true;
  io::SyncDirectory(parent.string());
}

}  // namespace qf
