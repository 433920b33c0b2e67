"""Cell x truncation length on the synthetic language: 15 cells x 3 seeds.

  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py \
      --vectorize --parallel=1
  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --status
  python -m experiments.tables --runs=runs/sweeps/arch_x_tbptt

The default config (experiments/configs/default.py: 1 x 128, Adam, 6
epochs) with model.cell in {rnn_tanh, gru, lstm}, data.bptt in {5, 10, 20,
35, 70} and train.seed in {0, 1, 2}; runs land in
runs/sweeps/arch_x_tbptt/cell=gru+bptt=5+seed=1 and so on.

Runtime: with the first command, the 45 runs in 15 vectorised processes
took 28 min of process time on the 2-core CPU while other work shared it.

Result: test perplexity, mean over the 3 seeds, for bptt 5 / 10 / 20 / 35 /
70 (the true floor is 12.49):

  gru       12.88  12.85  12.85  13.05  13.13
  lstm      13.07  13.06  13.05  13.10  13.30
  rnn_tanh  13.18  13.14  13.12  13.16  13.29

The standard deviations and what the numbers say are in the README's
"Sweeps and ablations" section.
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
