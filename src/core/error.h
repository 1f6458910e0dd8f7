// Two tiers of errors (see STYLE.md):
//  - whale::Error: recoverable, user-facing problems (bad files, bad arguments). The message is
//    one line that names the file/field; executables print it and exit non-zero.
//  - WHALE_ASSERT: invariants of our own code; always on, aborts with file:line.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace whale {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace whale

#define WHALE_ASSERT(cond)                                                            \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "whale: internal error: %s:%d: assertion '%s' failed\n", \
                   __FILE__, __LINE__, #cond);                                        \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
