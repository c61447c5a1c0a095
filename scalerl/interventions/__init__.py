"""Interventions: hooks that change training rather than measure it. ReDo and ReGraMa reset inactive neurons
(resets.py); LEAST stops unpromising episodes, and its control stops them at random (least.py). The
measurements they act on live in scalerl.diagnostics."""
