// word2vec's negative-sampling SGD step (skip-gram or CBOW) on a batch of
// centre words, as an XLA FFI handler for rnnlm_jax/backends/fused.py. It
// computes what rnnlm_jax/word2vec.py's skipgram_update and cbow_update
// compute once their output words are drawn: every score from the tables as
// they were before the step, then every row's summed update added.
//
// Phase 0, blocks of centres on XLA's thread pool: each centre's scores,
// loss and the gradients of its rows, kept in scratch ([B, C, D] for the
// context rows under skip-gram, [B, D] under CBOW, whose context rows all
// get the mean's gradient; [B, O, D] for the output rows), while its rows
// are in cache. Phase 1, blocks of table rows: block k adds the updates of
// the rows whose id is k modulo the blocks, in batch order, so no two
// threads write one row and the sums do not depend on the threads.
//
// Shapes: tables in/out [V, D]; context [B, C] int32 and its mask [B, C]
// (1 or 0, float32); outputs [B, O] int32 (the centre, then the negatives)
// and their weights [B, O] (1 or 0); lr []. Results: the tables (aliased to
// the inputs), the summed loss [] and the squared norm of the gradient rows
// [] (before they are summed into the tables).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLanes = 8;

inline float Dot(const float* __restrict a, const float* __restrict b,
                 int64_t n) {
  float lane[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lane[l] += a[i + l] * b[i + l];
  }
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int64_t l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

inline void Axpy(float g, const float* __restrict x, float* __restrict y,
                 int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += g * x[i];
}

// -log sigma(x), stably.
inline double NegLogSigmoid(float x) {
  return x >= 0 ? std::log1p(std::exp(-double(x)))
                : -double(x) + std::log1p(std::exp(double(x)));
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

ffi::Error Impl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32, 2> in,
                ffi::Buffer<ffi::F32, 2> out, ffi::Buffer<ffi::S32, 2> ctx,
                ffi::Buffer<ffi::F32, 2> mask, ffi::Buffer<ffi::S32, 2> oid,
                ffi::Buffer<ffi::F32, 2> weight,
                ffi::Buffer<ffi::F32, 0> lr_buf,
                ffi::ResultBuffer<ffi::F32, 2> in_new,
                ffi::ResultBuffer<ffi::F32, 2> out_new,
                ffi::ResultBuffer<ffi::F32, 0> loss,
                ffi::ResultBuffer<ffi::F32, 0> grad_sq, int64_t cbow) {
  const int64_t V = in.dimensions()[0], D = in.dimensions()[1];
  const int64_t B = ctx.dimensions()[0], C = ctx.dimensions()[1];
  const int64_t O = oid.dimensions()[1];
  const float* pin = in.typed_data();
  const float* pout = out.typed_data();
  float* qin = in_new->typed_data();
  float* qout = out_new->typed_data();
  // Unaliased (the tables were not donated): start from a copy.
  if (qin != pin) std::memcpy(qin, pin, sizeof(float) * V * D);
  if (qout != pout) std::memcpy(qout, pout, sizeof(float) * V * D);
  const int32_t* pc = ctx.typed_data();
  const float* pm = mask.typed_data();
  const int32_t* po = oid.typed_data();
  const float* pw = weight.typed_data();
  const float lr = *lr_buf.typed_data();
  for (int64_t i = 0; i < B * C; ++i) {
    if (pm[i] != 0 && (pc[i] < 0 || pc[i] >= V)) {
      return ffi::Error::InvalidArgument("word2vec: a context id out of range");
    }
  }
  for (int64_t i = 0; i < B * O; ++i) {
    if (pw[i] != 0 && (po[i] < 0 || po[i] >= V)) {
      return ffi::Error::InvalidArgument("word2vec: an output id out of range");
    }
  }
  const int64_t ctx_rows = cbow ? B : B * C;
  auto dv = std::make_shared<std::vector<float>>(ctx_rows * D, 0.0f);
  auto du = std::make_shared<std::vector<float>>(B * O * D, 0.0f);
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(B, 4 * threads));
  auto losses = std::make_shared<std::vector<double>>(blocks, 0.0);
  auto squares = std::make_shared<std::vector<double>>(blocks, 0.0);

  auto body = [=](int64_t phase, int64_t k) {
    if (phase == 0) {
      const int64_t b0 = B * k / blocks, b1 = B * (k + 1) / blocks;
      std::vector<float> h(D), dh(D);
      double total = 0, sq = 0;
      for (int64_t b = b0; b < b1; ++b) {
        float* du_b = du->data() + b * O * D;
        if (cbow) {
          std::fill(h.begin(), h.end(), 0.0f);
          int64_t n = 0;
          for (int64_t c = 0; c < C; ++c) {
            if (pm[b * C + c] == 0) continue;
            Axpy(1.0f, pin + int64_t(pc[b * C + c]) * D, h.data(), D);
            ++n;
          }
          if (n == 0) continue;
          for (int64_t d = 0; d < D; ++d) h[d] /= float(n);
          float* dh_b = dv->data() + b * D;
          for (int64_t o = 0; o < O; ++o) {
            if (pw[b * O + o] == 0) continue;
            const float* u = pout + int64_t(po[b * O + o]) * D;
            const float s = Dot(h.data(), u, D);
            total += NegLogSigmoid(o == 0 ? s : -s);
            const float g = (o == 0 ? 1.0f : 0.0f) - Sigmoid(s);
            Axpy(g, u, dh_b, D);
            Axpy(g, h.data(), du_b + o * D, D);
          }
          sq += double(n) * Dot(dh_b, dh_b, D);
        } else {
          for (int64_t c = 0; c < C; ++c) {
            if (pm[b * C + c] == 0) continue;
            const float* v = pin + int64_t(pc[b * C + c]) * D;
            float* dv_bc = dv->data() + (b * C + c) * D;
            for (int64_t o = 0; o < O; ++o) {
              if (pw[b * O + o] == 0) continue;
              const float* u = pout + int64_t(po[b * O + o]) * D;
              const float s = Dot(v, u, D);
              total += NegLogSigmoid(o == 0 ? s : -s);
              const float g = (o == 0 ? 1.0f : 0.0f) - Sigmoid(s);
              Axpy(g, u, dv_bc, D);
              Axpy(g, v, du_b + o * D, D);
            }
            sq += Dot(dv_bc, dv_bc, D);
          }
        }
        for (int64_t o = 0; o < O; ++o) {
          sq += Dot(du_b + o * D, du_b + o * D, D);
        }
      }
      (*losses)[k] = total;
      (*squares)[k] = sq;
      return;
    }
    // Phase 1: the rows of ids k mod blocks.
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t c = 0; c < C; ++c) {
        const int32_t id = pc[b * C + c];
        if (pm[b * C + c] == 0 || id % blocks != k) continue;
        const float* g = dv->data() + (cbow ? b : b * C + c) * D;
        Axpy(lr, g, qin + int64_t(id) * D, D);
      }
      for (int64_t o = 0; o < O; ++o) {
        const int32_t id = po[b * O + o];
        if (pw[b * O + o] == 0 || id % blocks != k) continue;
        Axpy(lr, du->data() + (b * O + o) * D, qout + int64_t(id) * D, D);
      }
    }
  };
  auto phases =
      std::make_shared<rnnlm::Phases<decltype(body)>>(2, blocks, body);
  rnnlm::RunPhases(pool, std::min(threads, blocks) - 1, phases);
  double total = 0, sq = 0;
  for (int64_t k = 0; k < blocks; ++k) {
    total += (*losses)[k];
    sq += (*squares)[k];
  }
  *loss->typed_data() = float(total);
  *grad_sq->typed_data() = float(sq);
  return ffi::Error::Success();
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32, 2>>()  // input table
      .Arg<ffi::Buffer<ffi::F32, 2>>()  // output table
      .Arg<ffi::Buffer<ffi::S32, 2>>()  // context
      .Arg<ffi::Buffer<ffi::F32, 2>>()  // context mask
      .Arg<ffi::Buffer<ffi::S32, 2>>()  // output words
      .Arg<ffi::Buffer<ffi::F32, 2>>()  // their weights
      .Arg<ffi::Buffer<ffi::F32, 0>>()  // learning rate
      .Ret<ffi::Buffer<ffi::F32, 2>>()  // input table, updated
      .Ret<ffi::Buffer<ffi::F32, 2>>()  // output table, updated
      .Ret<ffi::Buffer<ffi::F32, 0>>()  // summed loss
      .Ret<ffi::Buffer<ffi::F32, 0>>()  // squared gradient norm
      .Attr<int64_t>("cbow");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmWord2vecF32, Impl, Binding());
