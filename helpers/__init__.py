"""Helpers for the QLoRA notebook course: each module is named for what it holds."""

import logging


def _not_kernels_community_advice(record: logging.LogRecord) -> bool:
    """False for bitsandbytes' advice to `pip install kernels`, which the course's CPU path does not need."""
    return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


# On CPUs with AVX512-BF16, importing bitsandbytes logs that it could not download a kernel for its repacked CPU
# layout and advises `pip install kernels`. The course keeps the NF4 layout (loading.keep_nf4_layout), so that kernel
# is never used and the advice would only mislead. Filtering that one message needs the filter in place before
# bitsandbytes is imported: every notebook's setup cell imports helpers first.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_kernels_community_advice)
