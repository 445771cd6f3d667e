"""Training: LR schedules, the optimizer's parameter groups, the loss, the train step and the loop around it.

One job per module -- ``schedules`` (per-step LR arrays), ``optim`` (momentum SGD with decay groups), ``losses``
(guarded cross-entropy), ``train_step`` (loss scaling, overflow skip, accumulation, gradient reducer),
``checkpointing`` (atomic training checkpoints, which to resume from), ``loop_state`` (the loop's step, data
position and skipped-step counts), ``monitor`` (logs and metrics.jsonl) and ``trainer`` (the loop behind
``tools/train.py``).
Import the module you need; nothing is re-exported here, so reading a schedule does not load the whole stack.
"""
