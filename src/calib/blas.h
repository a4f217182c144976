// Internal to src/calib: OpenBLAS runs single-threaded here, as in qf_model. Parallelism comes
// from qf::ThreadPool tasks over fixed tiles, each calling BLAS on its own tile, so results
// depend on the operand shapes only, never on the thread count.
#pragma once

#include <cblas.h>

#include <mutex>

namespace qf::calib {

inline void UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace qf::calib
