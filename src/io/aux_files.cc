// CopyAuxiliaryFiles: carries config, generation config, tokenizer and remote-code files of a
// checkpoint into the output, leaving out the weights (the output writes its own).
#include <algorithm>
#include <system_error>
#include <vector>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "src/io/file_io.h"

namespace qf {

namespace fs = std::filesystem;

namespace {

bool IsWeightFile(const std::string& name) {
  const auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".safetensors") || ends_with(".safetensors.index.json");
}

void CopyTree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::directory_iterator it(from, ec);
  if (ec) throw Error("cannot list directory: " + ec.message(), {from.string()});
  // Sorted, so that copies and any error happen in the same order on every file system.
  std::vector<fs::directory_entry> entries(fs::begin(it), fs::end(it));
  std::sort(entries.begin(), entries.end());
  for (const fs::directory_entry& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.front() == '.' || IsWeightFile(name)) continue;
    const fs::file_status status = fs::status(entry.path(), ec);  // follows symlinks
    if (ec) throw Error("cannot stat: " + ec.message(), {entry.path().string()});
    if (fs::is_directory(status)) {
      // Symlinked directories are not followed: they could loop or leave the checkpoint.
      if (fs::is_symlink(entry.symlink_status())) continue;
      fs::create_directory(to / name, ec);
      if (ec) throw Error("cannot create directory: " + ec.message(), {(to / name).string()});
      CopyTree(entry.path(), to / name);
    } else if (fs::is_regular_file(status)) {
      // Opening the path reads through symlinks (the Hugging Face cache links files to blobs).
      io::CopyFileContents(entry.path().string(), (to / name).string());
    }
  }
}

}  // namespace

void CopyAuxiliaryFiles(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::is_directory(to, ec)) throw Error("destination is not a directory", {to.string()});
  CopyTree(from, to);
}

}  // namespace qf
