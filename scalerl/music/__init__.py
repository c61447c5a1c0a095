"""ReaLchords (Wu et al., ICML 2024): online chord accompaniment to a melody. This package holds its
data and tokens; models, reward models, RL finetuning and the jam page build on them."""
