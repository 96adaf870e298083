import sys
from pathlib import Path

import pytest

from helpers import auth, loading
from helpers.runtime import cpu_threads

ROOT = Path(__file__).resolve().parent.parent
# scripts/ is not a package: the notebook tests reuse the course runner from there.
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread (results are the same bits; tiny tensors run faster)."""
    with cpu_threads("cpu"):
        yield


@pytest.fixture(autouse=True)
def fresh_token_cache():
    """auth keeps a found token for the session: start and end every test without one."""
    auth.forget_token()
    yield
    auth.forget_token()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The smoke model's folder (the committed one; a build, once a session, lands in the session's temp folder)."""
    return loading.tiny_gemma(cache_dir=tmp_path_factory.getbasetemp() / "tiny-cache")
