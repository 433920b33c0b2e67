// C = op(A) @ op(B) for 2-D float32 / float64 buffers, as an XLA FFI handler
// that calls a BLAS library's cblas_?gemm (rnnlm_jax/blas.py loads each
// library, hands its function pointers to rnnlm_gemm_set under an index that
// calls name in their "library" attribute, and registers the handlers). Built by blas.py with the system's C++ compiler against the
// FFI headers that jaxlib ships.
//
// Threads: the BLAS is asked for one thread per call, and the product is
// split into row or column blocks run on XLA's own intra-op thread pool, so
// that the BLAS's threads never compete with XLA's for the cores. The caller
// takes blocks too, and waits only for blocks another thread has started:
// a busy pool cannot deadlock it.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };

template <typename T>
using Gemm32 = void (*)(int, int, int, int, int, int, T, const T*, int,
                        const T*, int, T, T*, int);
template <typename T>
using Gemm64 = void (*)(int, int, int, int64_t, int64_t, int64_t, T, const T*,
                        int64_t, const T*, int64_t, T, T*, int64_t);
using SetThreads = int (*)(int);

struct Library {
  void* sgemm = nullptr;
  void* dgemm = nullptr;
  bool ilp64 = false;  // 64-bit integer arguments (OpenBLAS's ILP64 build).
  SetThreads set_threads_local = nullptr;  // Per calling thread, or null.
  int64_t min_block_flops = 0;  // Smaller products run as one block.
};

// The libraries set so far, by the index blas.py gave each.
constexpr int kMaxLibraries = 8;
Library g_libs[kMaxLibraries];

template <typename T>
void* Fn(const Library& lib) {
  return sizeof(T) == 4 ? lib.sgemm : lib.dgemm;
}

// One BLAS call on the calling thread, row-major.
template <typename T>
void Call(const Library& lib, bool ta, bool tb, int64_t m, int64_t n,
          int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
          int64_t ldc) {
  if (lib.set_threads_local != nullptr) lib.set_threads_local(1);
  int op_a = ta ? kTrans : kNoTrans, op_b = tb ? kTrans : kNoTrans;
  if (lib.ilp64) {
    reinterpret_cast<Gemm64<T>>(Fn<T>(lib))(kRowMajor, op_a, op_b, m, n, k,
                                            T(1), a, lda, b, ldb, T(0), c,
                                            ldc);
  } else {
    reinterpret_cast<Gemm32<T>>(Fn<T>(lib))(
        kRowMajor, op_a, op_b, static_cast<int>(m), static_cast<int>(n),
        static_cast<int>(k), T(1), a, static_cast<int>(lda), b,
        static_cast<int>(ldb), T(0), c, static_cast<int>(ldc));
  }
}

// The product split into blocks of rows of C (by_cols false) or of columns.
template <typename T>
struct Job {
  const Library* lib;
  bool ta, tb, by_cols;
  int64_t m, n, k, lda, ldb, block, blocks;
  const T* a;
  const T* b;
  T* c;
  std::atomic<int64_t> next{0}, done{0};

  void Block(int64_t i) {
    int64_t lo = i * block;
    if (by_cols) {
      int64_t len = std::min(n, lo + block) - lo;
      Call<T>(*lib, ta, tb, m, len, k, a, lda, tb ? b + lo * ldb : b + lo, ldb,
              c + lo, n);
    } else {
      int64_t len = std::min(m, lo + block) - lo;
      Call<T>(*lib, ta, tb, len, n, k, ta ? a + lo : a + lo * lda, lda, b, ldb,
              c + lo * n, n);
    }
  }

  void Run() {
    for (int64_t i; (i = next.fetch_add(1)) < blocks;) {
      Block(i);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

template <ffi::DataType D>
ffi::Error Impl(ffi::ThreadPool pool, ffi::Buffer<D, 2> a,
                ffi::Buffer<D, 2> b, ffi::ResultBuffer<D, 2> c, bool ta,
                bool tb, int64_t library) {
  using T = ffi::NativeType<D>;
  if (library < 0 || library >= kMaxLibraries ||
      Fn<T>(g_libs[library]) == nullptr) {
    return ffi::Error::Internal("rnnlm_gemm: no BLAS library at that index");
  }
  const Library& lib = g_libs[library];
  auto ad = a.dimensions(), bd = b.dimensions();
  auto job = std::make_shared<Job<T>>();
  job->lib = &lib;
  job->ta = ta;
  job->tb = tb;
  job->m = ta ? ad[1] : ad[0];
  job->k = ta ? ad[0] : ad[1];
  job->n = tb ? bd[0] : bd[1];
  if ((tb ? bd[1] : bd[0]) != job->k) {
    return ffi::Error::InvalidArgument("rnnlm_gemm: inner dimensions differ");
  }
  job->lda = ad[1];
  job->ldb = bd[1];
  job->a = a.typed_data();
  job->b = b.typed_data();
  job->c = c->typed_data();
  if (job->m == 0 || job->n == 0) return ffi::Error::Success();
  if (job->k == 0) {
    std::memset(job->c, 0, sizeof(T) * job->m * job->n);
    return ffi::Error::Success();
  }
  // Split the longer side of C, in blocks of 16 (whole vector registers).
  job->by_cols = job->n >= job->m;
  int64_t len = job->by_cols ? job->n : job->m;
  int64_t flops = 2 * job->m * job->n * job->k;
  int64_t parts = std::max<int64_t>(1, pool.num_threads());
  if (flops < lib.min_block_flops * 2) parts = 1;
  int64_t block = (len + parts - 1) / parts;
  block = std::min(len, (block + 15) / 16 * 16);
  job->block = block;
  job->blocks = (len + block - 1) / block;
  for (int64_t i = 1; i < job->blocks; ++i) {
    pool.Schedule([job] { job->Run(); });
  }
  job->Run();
  while (job->done.load(std::memory_order_acquire) < job->blocks) {
    std::this_thread::yield();
  }
  return ffi::Error::Success();
}

}  // namespace

// Sets library ``index``; 0 on success, -1 for an index out of range.
extern "C" int rnnlm_gemm_set(int index, void* sgemm, void* dgemm, int ilp64,
                              void* set_threads_local,
                              int64_t min_block_flops) {
  if (index < 0 || index >= kMaxLibraries) return -1;
  Library& lib = g_libs[index];
  lib.sgemm = sgemm;
  lib.dgemm = dgemm;
  lib.ilp64 = ilp64 != 0;
  lib.set_threads_local = reinterpret_cast<SetThreads>(set_threads_local);
  lib.min_block_flops = min_block_flops;
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
