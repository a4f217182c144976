// OutputTransaction, cancellation, write errors and CopyAuxiliaryFiles: after every failure the
// parent directory holds exactly what it held before (nothing left behind), and the input is
// never changed.
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "quantforge/checkpoint.h"

namespace qf {
namespace {

namespace fs = std::filesystem;
using testing_io::ExpectError;
using testing_io::ListDir;
using testing_io::ReadFile;
using testing_io::ScratchDir;
using testing_io::WriteFile;

// Writes a one-tensor checkpoint into the transaction's directory.
void WriteSmallCheckpoint(const fs::path& dir, uint8_t value) {
  CheckpointWriter writer(dir, {{"w", DType::kU8, {4}}});
  const std::byte bytes[4] = {std::byte{value}, std::byte{value}, std::byte{value}, std::byte{value}};
  writer.Write("w", bytes);
  writer.Finish();
}

uint8_t FirstValue(const fs::path& dir) {
  const Checkpoint checkpoint = Checkpoint::Open(dir);
  return static_cast<uint8_t>(checkpoint.View(checkpoint.Tensors()[0]).data[0]);
}

TEST(OutputTransaction, CommitRenamesTheTemporarySibling) {
  ScratchDir scratch;
  const fs::path target = scratch / "out";
  {
    OutputTransaction transaction(target, /*overwrite=*/false);
    EXPECT_EQ(transaction.Dir(), scratch / (".out.tmp-" + std::to_string(::getpid())));
    EXPECT_TRUE(fs::is_directory(transaction.Dir()));
    EXPECT_FALSE(fs::exists(target));
    WriteSmallCheckpoint(transaction.Dir(), 7);
    transaction.Commit();
  }
  EXPECT_EQ(ListDir(scratch.path()), std::vector<std::string>{"out"});
  EXPECT_EQ(FirstValue(target), 7);
}

TEST(OutputTransaction, WithoutCommitNothingIsLeftBehind) {
  ScratchDir scratch;
  try {
    OutputTransaction transaction(scratch / "out/", false);  // trailing slash is the same target
    WriteSmallCheckpoint(transaction.Dir(), 1);
    throw Error("simulated failure mid-way");
  } catch (const Error&) {
  }
  EXPECT_TRUE(ListDir(scratch.path()).empty());
}

TEST(OutputTransaction, ExistingTargetNeedsOverwriteAndIsReplacedOnlyOnCommit) {
  ScratchDir scratch;
  const fs::path target = scratch / "out";
  {
    OutputTransaction first(target, false);
    WriteSmallCheckpoint(first.Dir(), 1);
    first.Commit();
  }
  ExpectError([&] { OutputTransaction(target, false); },
              {"output directory " + target.string() + " exists (use --overwrite)"});
  {
    OutputTransaction second(target, /*overwrite=*/true);
    WriteSmallCheckpoint(second.Dir(), 2);
    EXPECT_EQ(FirstValue(target), 1);  // the old output is intact until Commit
    second.Commit();
  }
  EXPECT_EQ(FirstValue(target), 2);
  EXPECT_EQ(ListDir(scratch.path()), std::vector<std::string>{"out"});
  {
    OutputTransaction abandoned(target, true);
    WriteSmallCheckpoint(abandoned.Dir(), 3);
  }
  EXPECT_EQ(FirstValue(target), 2);  // an abandoned overwrite keeps the old output
  EXPECT_EQ(ListDir(scratch.path()), std::vector<std::string>{"out"});

  WriteFile(scratch / "file", "x");
  ExpectError([&] { OutputTransaction(scratch / "file", true); }, {"not a directory"});
}

TEST(OutputTransaction, TargetCreatedMeanwhileIsNotClobbered) {
  ScratchDir scratch;
  OutputTransaction transaction(scratch / "out", false);
  fs::create_directory(scratch / "out");
  WriteFile(scratch / "out" / "keep", "k");
  ExpectError([&] { transaction.Commit(); }, {"exists (use --overwrite)"});
  EXPECT_EQ(ReadFile(scratch / "out" / "keep"), "k");
}

TEST(OutputTransaction, CancelUnwindsAndRemovesEverything) {
  ScratchDir scratch;
  try {
    OutputTransaction transaction(scratch / "out", false);
    CheckpointWriter writer(transaction.Dir(), {{"a", DType::kU8, {1}}, {"b", DType::kU8, {1}}});
    const std::byte one[1] = {};
    writer.Write("a", one);
    RequestCancel();  // what the CLI's SIGINT handler does
    writer.Write("b", one);
    ADD_FAILURE() << "write after cancel succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted"), std::string::npos) << e.what();
  }
  ResetCancel();
  EXPECT_TRUE(ListDir(scratch.path()).empty());
}

TEST(OutputTransaction, RemoveActiveTempDirsClearsLiveTransactions) {
  ScratchDir scratch;
  OutputTransaction a(scratch / "a", false);
  OutputTransaction b(scratch / "b", false);
  WriteFile(a.Dir() / "partial", "p");
  RemoveActiveTempDirs();
  EXPECT_TRUE(ListDir(scratch.path()).empty());
}

// A file-size limit makes the kernel fail writes with EFBIG, the same path as ENOSPC (a full
// disk cannot be made without privileges). Run in a child so the limit stays there.
TEST(OutputTransaction, WriteErrorsNameTheFileAndLeaveNothing) {
  ScratchDir scratch;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // otherwise the process is killed instead of getting EFBIG
    const rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 1;
    try {
      OutputTransaction transaction(scratch / "out", false);
      CheckpointWriter writer(transaction.Dir(), {{"big", DType::kF32, {4096}}});
      code = 2;  // the reservation should already have failed
    } catch (const Error& e) {
      const std::string message = e.what();
      code = message.find("model.safetensors") != std::string::npos &&
                     message.find("File too large") != std::string::npos
                 ? 0
                 : 3;
    }
    std::_Exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: no error at reserve, 3: wrong message";
  EXPECT_TRUE(ListDir(scratch.path()).empty());
}

// A real full disk: a 64 KiB tmpfs mounted in a private mount namespace of a child process
// (needs CAP_SYS_ADMIN, so it skips elsewhere). The checkpoint's reservation and an auxiliary
// file copy each fail with ENOSPC naming the file, and the tmpfs is left empty.
TEST(OutputTransaction, DiskFullNamesTheFileAndLeavesNothing) {
  ScratchDir scratch;
  WriteFile(scratch / "config.json", std::string(128 << 10, 'c'));
  const fs::path mnt = scratch / "mnt";
  fs::create_directory(mnt);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Private propagation first, so the mount never shows up outside this child.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
      std::_Exit(77);
    }
    const auto failed_with_enospc = [](const Error& e, const char* file) {
      const std::string message = e.what();
      return message.find(file) != std::string::npos &&
             message.find("No space left on device") != std::string::npos;
    };
    int code = 0;
    try {
      OutputTransaction transaction(mnt / "out", false);
      CheckpointWriter writer(transaction.Dir(), {{"w", DType::kF32, {64 << 10}}});
      code |= 1;
    } catch (const Error& e) {
      if (!failed_with_enospc(e, "model.safetensors")) code |= 2;
    }
    try {
      OutputTransaction transaction(mnt / "out", false);
      CopyAuxiliaryFiles(scratch.path(), transaction.Dir());
      code |= 4;
    } catch (const Error& e) {
      if (!failed_with_enospc(e, "config.json")) code |= 8;
    }
    if (!ListDir(mnt).empty()) code |= 16;
    std::_Exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bits: 1/4 no error, 2/8 wrong message, 16 left behind";
  EXPECT_TRUE(ListDir(mnt).empty());
}

TEST(CopyAuxiliaryFiles, CopiesEverythingButWeightsAndChangesNothing) {
  ScratchDir scratch;
  const fs::path from = scratch / "in";
  const fs::path to = scratch / "out";
  fs::create_directories(from / "sub");
  fs::create_directories(from / ".cache");
  fs::create_directory(to);
  for (const char* name : {"config.json", "generation_config.json", "tokenizer.json",
                           "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                           "vocab.json", "merges.txt", "modeling_x.py", "chat_template.jinja",
                           "model.safetensors", "model-00001-of-00002.safetensors",
                           "model.safetensors.index.json"}) {
    WriteFile(from / name, name);
  }
  WriteFile(from / "sub" / "extra.txt", "extra");
  WriteFile(from / ".cache" / "lock", "l");
  WriteFile(scratch / "blob", "blob contents");
  fs::create_symlink(scratch / "blob", from / "linked.json");
  const auto before = ListDir(from);

  CopyAuxiliaryFiles(from, to);
  EXPECT_EQ(ListDir(to),
            (std::vector<std::string>{"chat_template.jinja", "config.json", "generation_config.json",
                                      "linked.json", "merges.txt", "modeling_x.py",
                                      "special_tokens_map.json", "sub", "tokenizer.json",
                                      "tokenizer.model", "tokenizer_config.json", "vocab.json"}));
  EXPECT_EQ(ReadFile(to / "config.json"), "config.json");
  EXPECT_EQ(ReadFile(to / "sub" / "extra.txt"), "extra");
  EXPECT_EQ(ReadFile(to / "linked.json"), "blob contents");
  EXPECT_FALSE(fs::is_symlink(to / "linked.json"));
  EXPECT_EQ(ListDir(from), before);
  EXPECT_EQ(ReadFile(from / "config.json"), "config.json");
  // A second copy onto existing files is an error naming the file, not a silent overwrite.
  ExpectError([&] { CopyAuxiliaryFiles(from, to); }, {(to / "chat_template.jinja").string(), "cannot create: File exists"});
}

}  // namespace
}  // namespace qf
