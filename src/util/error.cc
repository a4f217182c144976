// Implementation of qf::Error and the QF_CHECK failure path.
#include "quantforge/error.h"

#include <cstdio>
#include <cstdlib>

namespace qf {

std::string FormatErrorMessage(const std::string& problem, const ErrorContext& context) {
  std::string message;
  if (!context.path.empty()) message += context.path + ": ";
  if (!context.tensor.empty()) message += "tensor '" + context.tensor + "': ";
  if (context.byte_offset) message += "byte " + std::to_string(*context.byte_offset) + ": ";
  return message + problem;
}

Error::Error(std::string what, ErrorContext context)
    : std::runtime_error(FormatErrorMessage(what, context)),
      context_(std::move(context)),
      problem_(std::move(what)) {}

namespace detail {
void CheckFailed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "quantforge: internal error: check failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace qf
