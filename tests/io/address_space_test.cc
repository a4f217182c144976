// Streaming under an address-space limit: a 256 MiB checkpoint (sparse file: no disk space used)
// is read tensor by tensor in a child process whose RLIMIT_AS leaves room for ~1.5 tensors.
// Releasing each tensor after use must keep it running; holding every tensor must fail with a
// qf::Error naming the file and tensor (the limit is real). This is what lets the pipeline's
// streaming memory test use `prlimit --as` below the checkpoint size.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "quantforge/checkpoint.h"
#include "src/io/safetensors_format.h"

namespace qf {
namespace {

using testing_io::ScratchDir;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUnderAsan = true;  // ASan reserves terabytes of shadow: RLIMIT_AS cannot apply
#else
constexpr bool kUnderAsan = false;
#endif

constexpr int kNumTensors = 4;
constexpr int64_t kTensorBytes = int64_t{64} << 20;

// Header written normally, data left as a hole: reads return zeros without disk I/O.
void WriteSparseCheckpoint(const std::filesystem::path& file) {
  std::vector<TensorInfo> tensors;
  for (int i = 0; i < kNumTensors; ++i) {
    std::string name = "t";  // += rather than "t" + ...: g++ 12 warns falsely (-Wrestrict)
    name += std::to_string(i);
    tensors.push_back({name, DType::kU8, {kTensorBytes}, {},
                       static_cast<uint64_t>(i * kTensorBytes),
                       static_cast<uint64_t>((i + 1) * kTensorBytes)});
  }
  const std::string header = io::SerializeHeader(tensors, {});
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  QF_CHECK(fd >= 0);
  QF_CHECK(::write(fd, header.data(), header.size()) == static_cast<ssize_t>(header.size()));
  QF_CHECK(::ftruncate(fd, static_cast<off_t>(header.size() + kNumTensors * kTensorBytes)) == 0);
  ::close(fd);
}

int64_t VmSizeBytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t kb = -1;
  while (status >> key) {
    if (key == "VmSize:") {
      status >> kb;
      break;
    }
  }
  return kb * 1024;
}

// Exit codes: 0 ok, 1 streaming failed, 2 holding everything did not fail, 3 wrong message.
int RunUnderLimit(const std::filesystem::path& file) {
  const rlimit limit{static_cast<rlim_t>(VmSizeBytes() + kTensorBytes * 3 / 2),
                     static_cast<rlim_t>(VmSizeBytes() + kTensorBytes * 3 / 2)};
  if (::setrlimit(RLIMIT_AS, &limit) != 0) return 4;
  try {
    const Checkpoint checkpoint = Checkpoint::Open(file);
    for (int pass = 0; pass < 2; ++pass) {
      for (const TensorInfo& info : checkpoint.Tensors()) {
        const TensorView view = checkpoint.View(info);
        // First and last byte: the mapping covers the tensor (a sparse file reads as zeros).
        if (view.data.front() != std::byte{0} || view.data.back() != std::byte{0}) return 1;
        checkpoint.ReleasePages(info);
      }
    }
  } catch (const Error&) {
    return 1;
  }
  try {
    const Checkpoint checkpoint = Checkpoint::Open(file);
    for (const TensorInfo& info : checkpoint.Tensors()) checkpoint.View(info);
    return 2;
  } catch (const Error& e) {
    const std::string message = e.what();
    return message.find(file.string()) != std::string::npos &&
                   message.find("tensor 't1'") != std::string::npos &&
                   message.find("cannot map 67108864 bytes") != std::string::npos
               ? 0
               : 3;
  }
}

TEST(AddressSpace, StreamingReadsFitUnderALimitBelowTheCheckpointSize) {
  if (kUnderAsan) GTEST_SKIP() << "RLIMIT_AS does not combine with AddressSanitizer";
  ScratchDir scratch;
  const std::filesystem::path file = scratch / "model.safetensors";
  WriteSparseCheckpoint(file);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) std::_Exit(RunUnderLimit(file));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "1: streaming failed, 2: holding all tensors did not hit the limit, 3: wrong message, "
         "4: setrlimit failed";
}

}  // namespace
}  // namespace qf
