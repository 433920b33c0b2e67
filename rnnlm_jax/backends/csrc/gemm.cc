// C = op(A) @ op(B) for 2-D float32 / float64 buffers, as an XLA FFI handler
// that calls a BLAS library's cblas_?gemm. rnnlm_jax/blas.py loads each
// library, hands its function pointers to rnnlm_gemm_set under an index, and
// passes that index in the handlers' "library" attribute. Built by blas.py
// with the system's C++ compiler against the FFI headers that jaxlib ships.
//
// Threads: the BLAS is asked for one thread per call, and the product is
// split into row or column blocks run on XLA's own intra-op thread pool
// (blas.h: Phases), so that the BLAS's threads never compete with XLA's for
// the cores.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "blas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace rnnlm {

Library g_libs[kMaxLibraries];

}  // namespace rnnlm

namespace {

using rnnlm::Call;
using rnnlm::Library;

template <ffi::DataType D>
ffi::Error Impl(ffi::ThreadPool pool, ffi::Buffer<D, 2> a,
                ffi::Buffer<D, 2> b, ffi::ResultBuffer<D, 2> c, bool ta,
                bool tb, int64_t library) {
  using T = ffi::NativeType<D>;
  const Library* lib = rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_gemm: no BLAS library at that index");
  }
  auto ad = a.dimensions(), bd = b.dimensions();
  int64_t m = ta ? ad[1] : ad[0], k = ta ? ad[0] : ad[1];
  int64_t n = tb ? bd[0] : bd[1];
  if ((tb ? bd[1] : bd[0]) != k) {
    return ffi::Error::InvalidArgument("rnnlm_gemm: inner dimensions differ");
  }
  int64_t lda = ad[1], ldb = bd[1];
  const T* pa = a.typed_data();
  const T* pb = b.typed_data();
  T* pc = c->typed_data();
  if (m == 0 || n == 0) return ffi::Error::Success();
  if (k == 0) {
    std::memset(pc, 0, sizeof(T) * m * n);
    return ffi::Error::Success();
  }
  // Split the longer side of C into row or column blocks, each a multiple
  // of 16 long (whole vector registers).
  bool by_cols = n >= m;
  int64_t len = by_cols ? n : m;
  int64_t parts = std::max<int64_t>(1, pool.num_threads());
  if (2 * m * n * k < lib->min_block_flops * 2) parts = 1;
  int64_t block = (len + parts - 1) / parts;
  block = std::min(len, (block + 15) / 16 * 16);
  int64_t blocks = (len + block - 1) / block;
  auto body = [=](int64_t, int64_t i) {
    int64_t lo = i * block, hi = std::min(len, lo + block);
    if (by_cols) {
      Call<T>(*lib, ta, tb, m, hi - lo, k, pa, lda,
              tb ? pb + lo * ldb : pb + lo, ldb, pc + lo, n);
    } else {
      Call<T>(*lib, ta, tb, hi - lo, n, k, ta ? pa + lo : pa + lo * lda, lda,
              pb, ldb, pc + lo * n, n);
    }
  };
  rnnlm::RunPhases(pool, blocks - 1,
                   std::make_shared<rnnlm::Phases<decltype(body)>>(1, blocks,
                                                                   body));
  return ffi::Error::Success();
}

}  // namespace

// Sets library ``index``; 0 on success, -1 for an index out of range.
extern "C" int rnnlm_gemm_set(int index, void* sgemm, void* dgemm, int ilp64,
                              void* set_threads_local,
                              int64_t min_block_flops) {
  if (index < 0 || index >= rnnlm::kMaxLibraries) return -1;
  Library& lib = rnnlm::g_libs[index];
  lib.sgemm = sgemm;
  lib.dgemm = dgemm;
  lib.ilp64 = ilp64 != 0;
  lib.set_threads_local =
      reinterpret_cast<rnnlm::SetThreads>(set_threads_local);
  lib.min_block_flops = min_block_flops;
  return 0;
}

// Sets MKL's packed-operand API of library ``index`` for float32 and
// float64 (null where absent); 0 on success, -1 for an index out of range.
extern "C" int rnnlm_gemm_set_packed(int index, void* s_size, void* s_pack,
                                     void* s_compute, void* d_size,
                                     void* d_pack, void* d_compute) {
  if (index < 0 || index >= rnnlm::kMaxLibraries) return -1;
  Library& lib = rnnlm::g_libs[index];
  lib.packed[0] = {s_size, s_pack, s_compute};
  lib.packed[1] = {d_size, d_pack, d_compute};
  return 0;
}

template <ffi::DataType D>
constexpr auto Binding() {
  using Matrix = ffi::Buffer<D, 2>;
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<Matrix>()
      .template Arg<Matrix>()
      .template Ret<Matrix>()
      .template Attr<bool>("trans_a")
      .template Attr<bool>("trans_b")
      .template Attr<int64_t>("library");
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmGemmF32, Impl<ffi::F32>,
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmGemmF64, Impl<ffi::F64>,
                              Binding<ffi::F64>());
