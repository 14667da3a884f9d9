"""Mini GPT-2 training job for llmhost.

Run from the repository root::

    python -m training.train --config tiny --out /tmp/run

See training/README.md for the CLI, the outputs and the exit codes.
"""

RUN_DIR_NAME = "openllm_gpu_training_run"

__all__ = ["RUN_DIR_NAME"]
