"""The laptop demo: a tiny character-level GPT-2 trained on CPU on synthetic skills.

``tripwire.demo.skills`` generates the skills' training text and evaluation items;
``tripwire.demo.train`` trains the model and writes checkpoints the way a trainer does.
The lm-eval tasks that score those skills live in ``evals/demo/tasks/``.
"""
