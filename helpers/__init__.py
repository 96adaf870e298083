"""Helpers for the QLoRA notebook course: each module is named for what it holds."""
