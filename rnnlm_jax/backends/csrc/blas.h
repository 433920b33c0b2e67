// What the handlers of this folder share: the BLAS libraries that
// rnnlm_jax/blas.py sets (by index), one single-threaded BLAS call, and a
// scheduler that runs phases of blocks on XLA's intra-op thread pool.
#ifndef RNNLM_JAX_CSRC_BLAS_H_
#define RNNLM_JAX_CSRC_BLAS_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace rnnlm {

enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151 };
enum { kBMatrix = 162 };

template <typename T>
using Gemm32 = void (*)(int, int, int, int, int, int, T, const T*, int,
                        const T*, int, T, T*, int);
template <typename T>
using Gemm64 = void (*)(int, int, int, int64_t, int64_t, int64_t, T, const T*,
                        int64_t, const T*, int64_t, T, T*, int64_t);
using SetThreads = int (*)(int);
// MKL's packed-operand API (LP64): cblas_?gemm_pack_get_size, _pack, and
// _compute.
using PackSize = size_t (*)(int, int, int, int);
template <typename T>
using Pack = void (*)(int, int, int, int, int, int, T, const T*, int, T*);
template <typename T>
using Compute = void (*)(int, int, int, int, int, int, const T*, int,
                         const T*, int, T, T*, int);

struct PackedApi {
  void* size = nullptr;
  void* pack = nullptr;
  void* compute = nullptr;
};

struct Library {
  bool builtin = false;  // The built-in product (BuiltIn), no BLAS calls.
  void* sgemm = nullptr;
  void* dgemm = nullptr;
  bool ilp64 = false;  // 64-bit integer arguments (OpenBLAS's ILP64 build).
  SetThreads set_threads_local = nullptr;  // Per calling thread, or null.
  int64_t min_block_flops = 0;  // Smaller products run as one block.
  PackedApi packed[2];  // float32, float64; unset where the library has none.
};

// The libraries set so far, by the index blas.py gave each (gemm.cc).
constexpr int kMaxLibraries = 8;
extern Library g_libs[kMaxLibraries];

template <typename T>
void* Fn(const Library& lib) {
  return sizeof(T) == 4 ? lib.sgemm : lib.dgemm;
}

// The library at ``index``, or null where none is set for T.
template <typename T>
const Library* Find(int64_t index) {
  if (index < 0 || index >= kMaxLibraries) return nullptr;
  return Fn<T>(g_libs[index]) == nullptr ? nullptr : &g_libs[index];
}

// The ``library`` index that stands for no BLAS library: the recurrence's
// per-step products then run through the built-in packed product below.
constexpr int64_t kBuiltIn = -1;

inline const Library& BuiltIn() {
  static const Library lib = [] {
    Library l;
    l.builtin = true;
    l.min_block_flops = 1000000;  // As blas.py's _MIN_BLOCK_FLOPS.
    return l;
  }();
  return lib;
}

// The built-in product C = A @ op(B) for a right operand used at every step
// (a recurrent weight): op(B) [k, n] packed once into panels of Panel<T>()
// columns, [k, Panel<T>()] each, the last one zero-padded; C by blocks of
// kRows rows x one panel, held in registers through k. Written with GCC's
// vector extensions, two vectors a panel row: 64-byte vectors where the CPU
// has AVX-512 (8 rows x 2 accumulators in its 32 registers), else 32-byte
// ones (6 rows x 2 in 16). One core runs it at about its peak
// (docs/performance.md).
#ifdef __AVX512F__
constexpr int kVecBytes = 64;
constexpr int kRows = 8;
#else
constexpr int kVecBytes = 32;
constexpr int kRows = 6;
#endif

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};

template <typename T>
constexpr int64_t Panel() {
  return 2 * kVecBytes / static_cast<int64_t>(sizeof(T));
}

// Rows [0, R) of C's columns [0, cols) = A [R, k] @ one panel.
template <typename T, int R>
inline void PanelRows(int64_t k, const T* __restrict a, int64_t lda,
                      const T* __restrict panel, T* __restrict c, int64_t ldc,
                      int64_t cols) {
  using V = typename Vec<T>::type;
  constexpr int64_t kLanes = kVecBytes / sizeof(T);
  V acc[R][2];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = V{};
  for (int64_t p = 0; p < k; ++p) {
    V b0, b1;
    std::memcpy(&b0, panel + p * 2 * kLanes, kVecBytes);
    std::memcpy(&b1, panel + p * 2 * kLanes + kLanes, kVecBytes);
    for (int i = 0; i < R; ++i) {
      const T s = a[i * lda + p];
      acc[i][0] += s * b0;
      acc[i][1] += s * b1;
    }
  }
  for (int i = 0; i < R; ++i) {
    T row[2 * kLanes];
    std::memcpy(row, &acc[i][0], kVecBytes);
    std::memcpy(row + kLanes, &acc[i][1], kVecBytes);
    std::memcpy(c + i * ldc, row, sizeof(T) * cols);
  }
}

// C [m, n] = A [m, k] @ the packed op(B).
template <typename T>
void PanelProduct(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                  const T* panels, T* c, int64_t ldc) {
  constexpr int64_t kP = Panel<T>();
  for (int64_t j0 = 0; j0 < n; j0 += kP) {
    const T* panel = panels + j0 * k;
    const int64_t cols = std::min(kP, n - j0);
    int64_t i = 0;
    for (; i + kRows <= m; i += kRows) {
      PanelRows<T, kRows>(k, a + i * lda, lda, panel, c + i * ldc + j0, ldc,
                          cols);
    }
    if (i + 4 <= m) {
      PanelRows<T, 4>(k, a + i * lda, lda, panel, c + i * ldc + j0, ldc, cols);
      i += 4;
    }
    if (i + 2 <= m) {
      PanelRows<T, 2>(k, a + i * lda, lda, panel, c + i * ldc + j0, ldc, cols);
      i += 2;
    }
    if (i < m) {
      PanelRows<T, 1>(k, a + i * lda, lda, panel, c + i * ldc + j0, ldc, cols);
    }
  }
}

// C = op(A) op(B), one BLAS call on the calling thread, row-major.
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

// A right-hand operand op(B) [k, n] used for many products: packed once
// into the library's internal layout where it has MKL's packed API (a
// weight multiplied at every step), into the built-in product's panels
// under BuiltIn(), read in place otherwise.
template <typename T>
class RightOperand {
 public:
  RightOperand(const Library& lib, int64_t m, bool tb, int64_t n, int64_t k,
               const T* b, int64_t ldb)
      : lib_(lib), tb_(tb), n_(n), k_(k), b_(b), ldb_(ldb) {
    if (lib.builtin) {
      PackPanels();
      return;
    }
    const PackedApi& api = lib.packed[sizeof(T) == 4 ? 0 : 1];
    if (api.size == nullptr || lib.ilp64 || m <= 0 || n <= 0 || k <= 0) return;
    size_t bytes = reinterpret_cast<PackSize>(api.size)(kBMatrix, m, n, k);
    buffer_.reset(static_cast<T*>(
        std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64)));
    if (buffer_ == nullptr) return;
    if (lib.set_threads_local != nullptr) lib.set_threads_local(1);
    reinterpret_cast<Pack<T>>(api.pack)(kRowMajor, kBMatrix,
                                        tb ? kTrans : kNoTrans, m, n, k, T(1),
                                        b, ldb, buffer_.get());
    compute_ = reinterpret_cast<Compute<T>>(api.compute);
  }

  // C [m, n] = A [m, k] @ op(B), on the calling thread.
  void Multiply(int64_t m, const T* a, int64_t lda, T* c, int64_t ldc) const {
    if (lib_.builtin) {
      PanelProduct<T>(m, n_, k_, a, lda, buffer_.get(), c, ldc);
      return;
    }
    if (compute_ == nullptr) {
      Call<T>(lib_, false, tb_, m, n_, k_, a, lda, b_, ldb_, c, ldc);
      return;
    }
    if (lib_.set_threads_local != nullptr) lib_.set_threads_local(1);
    compute_(kRowMajor, kNoTrans, kPacked, m, n_, k_, a, lda, buffer_.get(),
             n_, T(0), c, ldc);
  }

 private:
  void PackPanels() {
    constexpr int64_t kP = Panel<T>();
    const int64_t padded = (n_ + kP - 1) / kP * kP;
    buffer_.reset(static_cast<T*>(std::aligned_alloc(
        64, (std::max<int64_t>(padded * k_, 1) * sizeof(T) + 63) / 64 * 64)));
    if (buffer_ == nullptr) throw std::bad_alloc();  // As new T[] would.
    T* out = buffer_.get();
    for (int64_t j0 = 0; j0 < padded; j0 += kP) {
      for (int64_t p = 0; p < k_; ++p) {
        for (int64_t j = 0; j < kP; ++j, ++out) {
          const int64_t col = j0 + j;
          *out = col >= n_ ? T(0) : tb_ ? b_[col * ldb_ + p] : b_[p * ldb_ + col];
        }
      }
    }
  }

  const Library& lib_;
  bool tb_;
  int64_t n_, k_;
  const T* b_;
  int64_t ldb_;
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> buffer_;
  Compute<T> compute_ = nullptr;
};

inline void Relax(int64_t& spins) {
  if (++spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

// Phases 0 .. phases-1 run in order, each split into ``blocks`` blocks,
// ``body(phase, block)``; no block of a phase starts before every block of
// the one before has finished. Any number of threads may Run() at once; each
// claims blocks as it goes, and waits only for blocks another thread has
// claimed, so the caller finishes the work alone when no helper turns up.
template <typename Body>
class Phases {
 public:
  Phases(int64_t phases, int64_t blocks, Body body)
      : phases_(phases),
        blocks_(blocks),
        body_(std::move(body)),
        next_(new std::atomic<int64_t>[phases]),
        done_(new std::atomic<int64_t>[phases]) {
    for (int64_t p = 0; p < phases; ++p) {
      next_[p].store(0, std::memory_order_relaxed);
      done_[p].store(0, std::memory_order_relaxed);
    }
  }

  void Run() {
    for (int64_t p = 0; p < phases_; ++p) {
      if (next_[p].load(std::memory_order_relaxed) >= blocks_) continue;
      if (p > 0) Wait(p - 1);
      for (int64_t i; (i = next_[p].fetch_add(1)) < blocks_;) {
        body_(p, i);
        done_[p].fetch_add(1, std::memory_order_release);
      }
    }
  }

  void Wait(int64_t p) {
    for (int64_t spins = 0;
         done_[p].load(std::memory_order_acquire) < blocks_;) {
      Relax(spins);
    }
  }

  void WaitAll() {
    if (phases_ > 0) Wait(phases_ - 1);
  }

 private:
  int64_t phases_, blocks_;
  Body body_;
  std::unique_ptr<std::atomic<int64_t>[]> next_, done_;
};

// Runs ``phases`` on the calling thread and up to ``helpers`` threads of
// ``pool``; returns when every block has finished. The helpers hold the
// phases through a shared pointer: one that starts late finds nothing left
// to claim and returns without touching the buffers of the call.
template <typename Body>
void RunPhases(xla::ffi::ThreadPool& pool, int64_t helpers,
               std::shared_ptr<Phases<Body>> phases) {
  for (int64_t i = 0; i < helpers; ++i) {
    pool.Schedule([phases] { phases->Run(); });
  }
  phases->Run();
  phases->WaitAll();
}

}  // namespace rnnlm

#endif  // RNNLM_JAX_CSRC_BLAS_H_
