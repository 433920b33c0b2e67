"""The benchmark's report: medians over repetitions, FLOP/s as fractions
of the GEMM peak, and the report as one markdown table (the measurements
are rnnlm_jax.benchmark_runner's)."""

import statistics


def _median(results: list[dict], key: str):
  values = [r[key] for r in results if key in r]
  return statistics.median(values) if values else None


def _xla_mb(result: dict) -> float | None:
  memory = result.get("train_memory") or {}
  if "temp_bytes" not in memory:
    return None
  return (memory["temp_bytes"] + memory["argument_bytes"]) / 2**20


def peak(gemm_runs: list[dict], bf16: bool) -> float | None:
  """The run's highest GEMM peak: bfloat16's where ``bf16`` and measured
  (accelerators), else float32's; None where no GEMM run finished."""
  key = "gemm_peak_flops_bf16"
  if not gemm_runs:
    return None
  if bf16 and all(key in g for g in gemm_runs):
    return max(g[key] for g in gemm_runs)
  return max(g["gemm_peak_flops"] for g in gemm_runs)


def summarise(
    results: list[dict], flops_fwd: float, peak: float | None
) -> dict:
  """Medians over one implementation's repetitions, with FLOP/s and the
  fractions of ``peak`` (training counted as three forward passes)."""
  m = {
      k: _median(results, k)
      for k in (
          "train_tok_s",
          "eval_tok_s",
          "compile_train_s",
          "compile_eval_s",
          "peak_rss_mb",
      )
  }
  xla = [v for v in map(_xla_mb, results) if v is not None]
  m["train_xla_mb"] = statistics.median(xla) if xla else None
  m["train_flops_s"] = m["train_tok_s"] * 3 * flops_fwd
  m["eval_flops_s"] = m["eval_tok_s"] * flops_fwd
  for key in ("train", "eval"):
    m[f"{key}_frac_peak"] = m[f"{key}_flops_s"] / peak if peak else None
  return m


def _fmt(value, spec: str) -> str:
  return "" if value is None else format(value, spec)


def _percent(fraction: float | None) -> float | None:
  return None if fraction is None else 100 * fraction


def _resolved_gemm(report: dict) -> str:
  """The GEMM backend rnnlm_jax's processes ran (model.gemm resolved)."""
  used = sorted(
      {
          run["gemm"]
          for row in report["rows"]
          for run in row["runs"].get("rnnlm_jax", [])
          if "gemm" in run
      }
  )
  return "/".join(used) or "xla"


def markdown(report: dict) -> str:
  """The report as one markdown table (one line per row and implementation)."""
  peak = report["gemm"]["peak_flops"]
  lines = [
      f"Peak fp32 GEMM through XLA: {_fmt(peak and peak / 1e9, ',.1f')} "
      f"GFLOP/s; medians of "
      f"{report['repeats']} fresh-process repetitions, {report['steps']} "
      f"timed steps each; rnnlm_jax scan_impl={report['scan_impl']}, "
      f"backend={report.get('backend', 'default')}, "
      f"fold_embedding={report.get('fold_embedding', True)}, "
      f"time_chunks={report.get('time_chunks', 1)}, "
      f"gemm={_resolved_gemm(report)}, "
      f"unroll={report['unroll']}; host memory "
      f"{report.get('host_memory', 'system')} for every implementation.",
  ]
  extra = [f"{k} = {v}" for k, v in report.get("variants", {}).items()]
  bf16 = report["gemm"].get("peak_flops_bf16")
  if bf16:
    extra.append(
        f"peak bf16 GEMM {bf16 / 1e9:,.1f} GFLOP/s (bf16 rows' % peak)"
    )
  if report.get("matmul_precision", "default") != "default":
    extra.append(f"jax matmul precision {report['matmul_precision']}")
  if report.get("peer_device", "cpu") != "cpu":
    extra.append(f"PyTorch on {report['peer_device']}")
  if extra:
    lines[-1] += " " + "; ".join(extra) + "."
  lines += [
      "",
      "| preset | cell | B | H | impl | train tok/s | eval tok/s | "
      "ours/impl train | ours/impl eval | vs torch train / eval | "
      "train % peak | eval % peak | "
      "compile train s | peak RSS MB | XLA train MB |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in report["rows"]:
    for impl, m in row["median"].items():
      r = row["ratio"].get(impl, {})
      t = row.get("vs_torch", {}).get(impl)
      vs_torch = f"{t['train_tok_s']:.2f} / {t['eval_tok_s']:.2f}" if t else ""
      lines.append(
          f"| {row['preset']} | {row['cell']} | {row['batch']} | "
          f"{row['hidden']} | {impl} | {m['train_tok_s']:,.0f} | "
          f"{m['eval_tok_s']:,.0f} | {_fmt(r.get('train_tok_s'), '.2f')} | "
          f"{_fmt(r.get('eval_tok_s'), '.2f')} | {vs_torch} | "
          f"{_fmt(_percent(m['train_frac_peak']), '.1f')} | "
          f"{_fmt(_percent(m['eval_frac_peak']), '.1f')} | "
          f"{'-' if impl == 'torch' else _fmt(m['compile_train_s'], '.1f')} | "
          f"{m['peak_rss_mb']:,.0f} | {_fmt(m['train_xla_mb'], ',.1f')} |"
      )
  for f in report.get("failed", []):
    error = f["error"].strip().splitlines() or [""]
    lines.append(f"\nFailed: {f['measurement']}: {error[-1]}")
  if report.get("not_run"):
    lines.append(
        f"\nNot run (past --deadline_s={report['deadline_s']:g}): "
        + "; ".join(report["not_run"])
    )
  return "\n".join(lines)


def incomplete(report: dict) -> str:
  """The one error line of a run with measurements failed or not run."""
  parts = []
  if report["failed"]:
    first = report["failed"][0]
    parts.append(
        f"{len(report['failed'])} measurement(s) failed, the first "
        f"({first['measurement']}): "
        f"{first['error'].strip().splitlines()[-1]}"
    )
  if report["not_run"]:
    parts.append(
        f"{len(report['not_run'])} not run (past --deadline_s="
        f"{report['deadline_s']:g})"
    )
  return "error: " + "; ".join(parts)
