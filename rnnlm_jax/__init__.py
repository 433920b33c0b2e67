"""rnnlm_jax: recurrent neural language models in JAX.

Shape suffixes used throughout the package (``x_BT``, ``h_BH``, ...):

  B  batch (number of parallel streams or sentences)
  T  time (truncation length / sequence length)
  V  vocabulary size
  E  embedding width
  H  hidden width of a recurrent layer
  I  input width of a recurrent layer (E for the first layer, H above it)
  G  fused gate width: H for Elman cells, 3H for the GRU, 4H for the LSTM
  L  number of stacked layers
  D  width of a word vector (rnnlm_jax.embeddings: E, H, or a file's)
"""

__version__ = "0.1.0"
