// qf::Error: the one exception type for bad input. It carries where the problem is (file, tensor,
// byte offset) and what was expected versus found, so a message reaching the user names them.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace qf {

struct ErrorContext {
  std::string path;                    // file or directory the problem is in, if any
  std::string tensor;                  // tensor name, if any
  std::optional<uint64_t> byte_offset;  // offset inside `path`, if meaningful
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string what, ErrorContext context = {});

  const ErrorContext& context() const { return context_; }
  // The bare problem statement, without the location prefix.
  const std::string& problem() const { return problem_; }

 private:
  ErrorContext context_;
  std::string problem_;
};

// Formats "path: tensor 'name': byte 12: problem" leaving out the parts that are empty.
std::string FormatErrorMessage(const std::string& problem, const ErrorContext& context);

}  // namespace qf

// Invariant checks (programming errors, not bad input): abort with file:line.
#define QF_CHECK(cond)                                                  \
  do {                                                                  \
    if (!(cond)) ::qf::detail::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)
#ifdef NDEBUG
#define QF_DCHECK(cond) \
  do {                  \
  } while (0)
#else
#define QF_DCHECK(cond) QF_CHECK(cond)
#endif

namespace qf::detail {
[[noreturn]] void CheckFailed(const char* cond, const char* file, int line);
}  // namespace qf::detail
