"""Memory of the compiled train step against the truncation length, with and
without rematerialisation over time (model.remat_chunk).

  python -m experiments.memory --out=results/memory.json

Sizes come from XLA's memory analysis of the compiled step (temporaries and
arguments), not from running it: deterministic, no timing. Prints a markdown
table and writes the rows as JSON to --out.
"""

import json
import os

from absl import app
from absl import flags
import jax
import numpy as np

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax import optim
from rnnlm_jax import rundir
from rnnlm_jax import steps
from rnnlm_jax.config import ModelConfig, OptimConfig

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("out", "", "Write the rows as JSON here.")
  flags.DEFINE_string("cell", "lstm", "Cell.")
  flags.DEFINE_integer("vocab", 65, "Vocabulary size (char-level: 65).")
  flags.DEFINE_integer("hidden", 512, "Hidden units.")
  flags.DEFINE_integer("layers", 2, "Layers.")
  flags.DEFINE_integer("batch", 32, "Batch size.")
  flags.DEFINE_list("bptt", ["35", "100", "200", "400", "800"], "Lengths.")
  flags.DEFINE_list("remat_chunk", ["0", "25"], "Chunks (0: no remat).")
  flags.DEFINE_string("scan_impl", "custom_vjp", "model.scan_impl.")


def step_memory(model: ModelConfig, batch: int, bptt: int) -> dict:
  """XLA's memory analysis of the compiled train step on one segment."""
  tx, _ = optim.make_optimizer(OptimConfig(name="sgd", clip_norm=5.0), 1, 1)
  state = steps.init_train_state(jax.random.key(0), model, tx, batch)
  shape = (1, batch, bptt)
  batches = {
      "x": np.zeros(shape, np.int32),
      "y": np.zeros(shape, np.int32),
      "mask": np.ones(shape, np.float32),
      "reset": np.zeros(shape, bool),
  }
  compiled = steps.make_train_step(model, tx).lower(state, batches).compile()
  mem = compiled.memory_analysis()
  mib = lambda b: b / 2**20
  return {
      "bptt": bptt,
      "remat_chunk": model.remat_chunk,
      "temp_mib": mib(mem.temp_size_in_bytes),
      "argument_mib": mib(mem.argument_size_in_bytes),
      "output_mib": mib(mem.output_size_in_bytes),
      "alias_mib": mib(mem.alias_size_in_bytes),
  }


def table(rows) -> str:
  chunks = sorted({r["remat_chunk"] for r in rows})
  name = lambda c: "no remat" if c == 0 else f"remat chunk {c}"
  head = "| bptt | " + " | ".join(f"temp MiB, {name(c)}" for c in chunks)
  lines = [head + " | arguments MiB |", "|---" * (len(chunks) + 2) + "|"]
  for t in sorted({r["bptt"] for r in rows}):
    by_chunk = {r["remat_chunk"]: r for r in rows if r["bptt"] == t}
    cells = " | ".join(f"{by_chunk[c]['temp_mib']:,.1f}" for c in chunks)
    arg = by_chunk[chunks[0]]["argument_mib"]
    lines.append(f"| {t} | {cells} | {arg:,.1f} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    run()


def run():
  rows = []
  for chunk in (int(c) for c in FLAGS.remat_chunk):
    model = ModelConfig(
        cell=FLAGS.cell,
        vocab_size=FLAGS.vocab,
        hidden=FLAGS.hidden,
        num_layers=FLAGS.layers,
        scan_impl=FLAGS.scan_impl,
        remat_chunk=chunk,
    )
    config_lib.validate(config_lib.Config(model=model))  # One-line errors.
    for bptt in (int(t) for t in FLAGS.bptt):
      rows.append(step_memory(model, FLAGS.batch, bptt))
  print(table(rows))
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    rundir.write_text_atomic(
        FLAGS.out,
        json.dumps({"flags": FLAGS.flag_values_dict(), "rows": rows}, indent=2),
    )


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
