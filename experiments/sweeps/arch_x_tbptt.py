"""Cell x truncation length on the synthetic language: 15 cells x 3 seeds.

  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py
  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --vectorize
  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --status

The default config (experiments/configs/default.py: 1 x 128, Adam, 6
epochs) with model.cell in {rnn_tanh, gru, lstm}, data.bptt in {5, 10, 20,
35, 70} and train.seed in {0, 1, 2}; runs land in
runs/sweeps/arch_x_tbptt/cell=gru+bptt=5+seed=1 and so on. One run of the
default config takes about half a minute on a 2-core CPU (its docstring), so
the 45 runs are of the order of half an hour there; not yet run as a sweep.
"""

from launch.sweeps import Sweep, product


def get_sweep():
  return Sweep(
      name="arch_x_tbptt",
      config="experiments/configs/default.py",
      axes=product(
          {
              "model.cell": ["rnn_tanh", "gru", "lstm"],
              "data.bptt": [5, 10, 20, 35, 70],
          }
      ),
      seeds=[0, 1, 2],
  )
