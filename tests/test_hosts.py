"""The course on the hosts learners really use: Colab (Python 3.13) and Kaggle (Python 3.12), simulated here.

For each host a virtual environment gets that host's versions of the packages that matter (from
../shared/hosts/*-freeze.txt): the ones requirements.txt installs or upgrades, the host's notebook stack and the
host packages that declare requirements on them. torch, torchvision and torchaudio are metadata-only stand-ins (the
hosts' CUDA builds are not on PyPI and are not needed to resolve). Then the setup cell's own pip commands run on
top, as on the host, and four properties are checked from pip's output and importlib.metadata: torch is not
reinstalled, nothing the host imports at start-up is upgraded, no host package's declared requirement is broken,
and no torchao that peft refuses is left. A real Python 3.13 environment then runs the course's smoke path and
notebooks 01 and 05. Tests skip, saying why, where an interpreter or the host lists are missing.
"""
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import sync_badges
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
HOSTS_DIR = Path(os.environ.get("COURSE_HOSTS_DIR", ROOT.parent / "shared" / "hosts"))
HOSTS = {"colab": ("3.13", "colab-gpu-py313-freeze.txt"), "kaggle": ("3.12", "kaggle-gpu-py312-freeze.txt")}
# The hosts' CUDA builds (+cu128) are not on PyPI; torchvision and torchaudio pin torch exactly, as the real ones do.
STANDINS = ("torch", "torchvision", "torchaudio")
STARTUP = ("ipywidgets", "ipython", "ipykernel", "traitlets")
NOTEBOOK_STACK = STARTUP + ("widgetsnbextension", "jupyterlab-widgets", "jupyter-client", "jupyter-core", "tornado",
                            "pyzmq", "matplotlib-inline", "comm", "ipython-genutils")
# Host packages that declare requirements on what the course installs (huggingface_hub < 2, fsspec == 2025.3.0,
# pyarrow, transformers, ...), from their wheels' metadata on 2026-11-29. cudf-cu12 (pyarrow >= 15) and bigframes
# (pyarrow >= 15.0.2) were checked by hand: simulating them would pull in gigabytes of CUDA and cloud libraries.
DEPENDENTS = ("gradio", "gradio-client", "hf-gradio", "diffusers", "sentence-transformers", "timm", "torchtune",
              "torchdata", "gcsfs", "s3fs", "db-dtypes", "dask", "torchao", "kagglehub")
# Dependencies of those that only bring CUDA libraries: metadata-only stand-ins without requirements of their own.
HEAVY = re.compile(r"(nvidia-|cuda-|cupy|triton|libcudf|librmm|tensorflow|jax|jaxlib)")
CACHE = Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "qlora-course")
# Colab's torch, for the real Python 3.13 environment (a CUDA build from PyPI: it runs on the CPU too).
TORCH_313 = "torch==2.11.0"


def interpreter(version: str) -> Path | None:
    """A Python `version` ("3.13") interpreter: pyenv's first, else one on PATH; None when there is none."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def freeze(host: str) -> dict[str, tuple[str, str]]:
    """A host's `pip freeze` as {canonical name: (name, version)}, the name==version lines only."""
    lines = (HOSTS_DIR / HOSTS[host][1]).read_text().splitlines()
    pairs = [line.split("==", 1) for line in lines if re.fullmatch(r"[\w.-]+==[\w.+!-]+", line.strip())]
    return {canonicalize_name(name): (name, version) for name, version in pairs}


def standin_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write a wheel holding only metadata, so pip sees `name` `version` installed with these requirements."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: course-tests\nRoot-Is-Purelib: true\n"
                                   "Tag: py3-none-any\n",
    }
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}.dist-info/RECORD"])
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for member, text in files.items():
            whl.writestr(member, text)
    return path


def pip(python: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run pip with an environment's interpreter; fail with pip's output when it fails and check is set."""
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, check=False)
    if check and result.returncode:
        pytest.fail(f"pip {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def installed(python: Path) -> dict[str, str]:
    """{canonical name: version} of an environment."""
    listed = json.loads(pip(python, "list", "--format=json").stdout)
    return {canonicalize_name(d["name"]): d["version"] for d in listed}


def missing(python: Path) -> set[str]:
    """The requirements `pip check` finds not installed at all (canonical names)."""
    out = pip(python, "check", check=False).stdout
    return {canonicalize_name(m[1]) for m in re.finditer(r"requires ([\w.-]+), which is not installed", out)}


def install_host_packages(python: Path, tmp: Path, names: set[str], host_versions: dict) -> None:
    """Install the host's versions of names (real wheels), then stand-ins for the host packages they need.

    The dependencies of those that the host has are stand-ins without requirements of their own: on the host they
    are installed and consistent, and pip only needs to see them installed, or it would install the newest release
    of each (a missing notebook package pulled in a new traitlets). A package with no wheel for this Python is a
    stand-in too.
    """
    real = {n for n in names if not HEAVY.match(n)}
    standins = set(names) - real
    while True:
        wheels = [standin_wheel(tmp, *host_versions[n]) for n in sorted(standins)]
        pins = [f"{host_versions[n][0]}=={host_versions[n][1]}" for n in sorted(real)]
        result = pip(python, "install", "-q", "--no-deps", "--only-binary=:all:", *pins, *map(str, wheels), check=False)
        unavailable = {canonicalize_name(m[1]) for m in re.finditer(r"No matching distribution found for ([\w.-]+)==",
                                                                    result.stdout + result.stderr)}
        if not result.returncode:
            break
        if not unavailable & real:
            pytest.fail(f"installing the host's packages failed:\n{result.stderr[-3000:]}")
        real -= unavailable
        standins |= unavailable
    done = set(names)
    while needed := (missing(python) & set(host_versions)) - done:
        pip(python, "install", "-q", "--no-deps", *(str(standin_wheel(tmp, *host_versions[n])) for n in sorted(needed)))
        done |= needed


def conflicts(python: Path) -> set[str]:
    """The version conflicts `pip check` reports (missing requirements of a partial host are not conflicts)."""
    return {line for line in pip(python, "check", check=False).stdout.splitlines() if "has requirement" in line}


def setup_commands() -> list[list[str]]:
    """The setup cell's %pip commands, with the course's URLs pointing at this checkout (and -q dropped)."""
    repo, ref = sync_badges.read_setting(ROOT)
    commands = []
    for line in sync_badges.setup_cell(repo, ref).splitlines():
        line = line.strip()
        if line.startswith("%pip "):
            args = shlex.split(line.removeprefix("%pip "), comments=True)
            local = {f"https://raw.githubusercontent.com/{repo}/{ref}/requirements.txt": str(ROOT / "requirements.txt"),
                     f"git+https://github.com/{repo}@{ref}": str(ROOT)}
            commands.append([local.get(arg, arg) for arg in args if arg != "-q"])
    return commands


# Runs inside the simulated host: load what a running kernel would have loaded, run the setup cell's pip commands,
# then its check, as the cell does, and write what happened as JSON.
DRIVER = textwrap.dedent("""
    import json, subprocess, sys
    commands, preload, report = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    for name in preload:
        __import__(name)
    runs = [subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                           capture_output=True, text=True) for args in commands]
    try:
        from helpers.setup_check import check_install
        check_install()
        check = "ok"
    except Exception as err:
        check = f"{type(err).__name__}: {err}"
    json.dump({"pip": [{"args": a, "rc": r.returncode, "out": r.stdout + r.stderr} for a, r in zip(commands, runs)],
               "check": check}, open(report, "w"))
""")


def _drive(python: Path, tmp: Path, commands: list, preload: list) -> dict:
    report = tmp / f"report-{len(list(tmp.glob('report-*')))}.json"
    subprocess.run([str(python), "-c", DRIVER, json.dumps(commands), json.dumps(preload), str(report)],
                   check=True, capture_output=True, text=True, cwd=tmp)
    return json.loads(report.read_text())


@pytest.fixture(scope="module", params=list(HOSTS))
def simulated(request, tmp_path_factory):
    """A host's package set with the setup cell run on top, and what changed."""
    host = request.param
    version, listing = HOSTS[host]
    python_exe = interpreter(version)
    if python_exe is None:
        pytest.skip(f"no Python {version} interpreter (pyenv install {version}, or put python{version} on PATH)")
    if not (HOSTS_DIR / listing).is_file():
        pytest.skip(f"{HOSTS_DIR / listing} is missing: the host package lists come with the project's shared/")
    tmp = tmp_path_factory.mktemp(f"host-{host}")
    subprocess.run([str(python_exe), "-m", "venv", str(tmp / "venv")], check=True)
    python = tmp / "venv" / "bin" / "python"
    pip(python, "install", "-q", "--upgrade", "pip")
    host_versions = freeze(host)
    torch_version = host_versions["torch"][1]
    wheels = [standin_wheel(tmp, host_versions[name][0], host_versions[name][1],
                            () if name == "torch" else (f"torch=={torch_version}",))
              for name in STANDINS if name in host_versions]
    pip(python, "install", "-q", "--no-deps", *map(str, wheels))
    # what requirements.txt would install on an otherwise empty environment: the host's versions of those matter
    report = tmp / "closure.json"
    pip(python, "install", "-q", "--dry-run", "--report", str(report), "-r", str(ROOT / "requirements.txt"))
    closure = {canonicalize_name(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    matter = (closure | set(NOTEBOOK_STACK) | set(DEPENDENTS)) & set(host_versions) - set(STANDINS)
    install_host_packages(python, tmp, matter, host_versions)
    before, conflicts_before = installed(python), conflicts(python)
    commands = setup_commands()
    # a running kernel on the host has pyarrow loaded when it has pandas; the check must then ask for a restart
    first = _drive(python, tmp, commands, preload=["pyarrow"])
    after, conflicts_after = installed(python), conflicts(python)
    second = _drive(python, tmp, [], preload=[])  # after a restart: nothing to install, nothing stale
    site = next((tmp / "venv" / "lib").glob("python*/site-packages"))
    changed = {n: (before.get(n), v) for n, v in after.items() if before.get(n) != v}
    changed |= {n: (v, None) for n, v in before.items() if n not in after}
    pip_out = "\n".join(run["out"] for run in first["pip"])
    # pip says why it collects a package: "Collecting jedi>=0.16 (from ipython==7.34.0)"
    wanted_by = {canonicalize_name(m[1]): m[2] for m in
                 re.finditer(r"^Collecting ([\w.-]+)[^(\n]*\(from (.+)\)$", pip_out, re.MULTILINE)}
    summary = "\n".join(f"- {n}: {old or '(not installed)'} -> {new or '(removed)'}"
                        + (f" (for {wanted_by[n]})"
                           if not old and "requirements.txt" not in wanted_by.get(n, "requirements.txt") else "")
                        for n, (old, new) in sorted(changed.items()))
    (ROOT / "build" / "hosts").mkdir(parents=True, exist_ok=True)
    (ROOT / "build" / "hosts" / f"{host}.md").write_text(f"# {host}: what the setup cell changes\n\n{summary}\n")
    return SimpleNamespace(host=host, before=before, after=after, changed=changed, first=first, second=second,
                           conflicts_before=conflicts_before, conflicts_after=conflicts_after, site=site,
                           pip_out=pip_out)


def _successfully_installed(pip_out: str) -> set[str]:
    names = set()
    for line in pip_out.splitlines():
        if line.startswith("Successfully installed "):
            names |= {canonicalize_name(item.rsplit("-", 1)[0]) for item in line.split()[2:]}
    return names


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_setup_cell_installs_the_course(simulated):
    assert [run["rc"] for run in simulated.first["pip"]][:1] == [0], simulated.pip_out[-3000:]
    assert "qlora-course-helpers" in _successfully_installed(simulated.pip_out)
    for name in ("transformers", "trl", "peft", "bitsandbytes", "datasets", "huggingface-hub"):
        assert name in simulated.after, f"{name} is not installed"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_torch_is_not_reinstalled(simulated):
    assert simulated.after["torch"] == simulated.before["torch"]
    assert not {"torch", "torchvision", "torchaudio"} & _successfully_installed(simulated.pip_out)
    assert "Attempting uninstall: torch\n" not in simulated.pip_out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_nothing_the_host_imports_at_start_up_is_upgraded(simulated):
    stack = [n for n in NOTEBOOK_STACK if n in simulated.before]
    assert set(STARTUP) <= set(stack)
    assert {n: simulated.after.get(n) for n in stack} == {n: simulated.before[n] for n in stack}
    assert not set(stack) & _successfully_installed(simulated.pip_out)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_host_package_requirement_is_broken(simulated):
    assert "dependency conflicts" not in simulated.pip_out, simulated.pip_out[-3000:]
    assert simulated.conflicts_after <= simulated.conflicts_before, simulated.conflicts_after
    # the requirements this set-up is known to be close to: gradio, gradio_client, diffusers want huggingface_hub < 2
    assert Version(simulated.after["huggingface-hub"]) < Version("2")
    assert simulated.after.get("fsspec") == simulated.before.get("fsspec")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_torchao_that_peft_refuses_is_left(simulated):
    source = (simulated.site / "peft" / "import_utils.py").read_text()
    minimum = Version(re.search(r'TORCHAO_MINIMUM_VERSION = packaging\.version\.parse\("([\d.]+)"\)', source)[1])
    assert simulated.before.get("torchao"), "the host's torchao was not simulated"
    left = simulated.after.get("torchao")
    assert left is None or Version(left) >= minimum, f"torchao {left} is left and peft needs >= {minimum}"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_check_asks_for_a_restart_only_when_a_loaded_library_was_replaced(simulated):
    replaced = simulated.after.get("pyarrow") != simulated.before.get("pyarrow")
    if replaced:
        assert simulated.first["check"].startswith("RuntimeError: Restart needed"), simulated.first["check"]
        assert f"pyarrow: {simulated.before['pyarrow']} is loaded" in simulated.first["check"]
    else:
        assert simulated.first["check"] == "ok", simulated.first["check"]
    assert simulated.second["check"] == "ok", simulated.second["check"]


def _py313_env() -> Path:
    """A real Python 3.13 environment with Colab's torch and the course's pins, cached between runs by its inputs."""
    python_exe = interpreter("3.13")
    if python_exe is None:
        pytest.skip("no Python 3.13 interpreter (pyenv install 3.13, or put python3.13 on PATH)")
    # what running notebooks needs besides the pins (ipywidgets comes with the hosts, and with jupyter locally)
    dev = [line for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
           if re.match(r"(nbclient|nbformat|ipykernel|ipywidgets)\b", line)]
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    key = hashlib.sha256("\n".join([TORCH_313, *pinned, *dev, str(python_exe)]).encode()).hexdigest()[:12]
    env = CACHE / f"py313-{key}"
    if (env / ".ready").exists():
        return env / "bin" / "python"
    for stale in CACHE.glob("py313-*"):  # an older set of pins: several GB each, keep only one
        shutil.rmtree(stale, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python_exe), "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    pip(python, "install", "-q", "--upgrade", "pip")
    pip(python, "install", "-q", TORCH_313)
    pip(python, "install", "-q", "-r", str(ROOT / "requirements.txt"), *dev)
    (env / ".ready").touch()
    return python


SMOKE_PATH = textwrap.dedent("""
    import sys
    import torch
    from peft import LoraConfig, get_peft_model

    from helpers import data, loading, prompting, training
    from helpers.runtime import detect

    assert sys.version_info[:2] == (3, 13), sys.version
    rt = detect()
    assert rt.mode == "smoke", rt
    name = loading.tiny_gemma()
    model, tokenizer = loading.load_model(name, rt), loading.load_tokenizer(name)
    trainer = training.make_trainer(model, tokenizer, data.load_alpaca(rt, limit=16), preset="smoke", rt=rt,
                                    output_dir=sys.argv[1], max_steps=3)
    training.train(trainer)
    prompts = [prompting.inference_prompt(row) for row in data.load_alpaca(rt, limit=2)]
    texts = prompting.generate(trainer.model, loading.load_tokenizer(name, padding_side="left"), prompts,
                               max_new_tokens=4)
    assert len(texts) == 2, texts


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.lin(x)


    try:
        lora = get_peft_model(Net(), LoraConfig(r=2, target_modules=["lin"]))
        print("plain nn.Linear LoRA:", lora(torch.randn(2, 8)).shape)
    except ImportError as err:
        print("plain nn.Linear LoRA: ImportError", err)
""")

# Runs a notebook in the Python 3.13 environment with the course runner; a failure prints the failing cell.
RUN_NOTEBOOK = textwrap.dedent("""
    import sys
    from pathlib import Path

    import nbformat
    from nbclient.exceptions import CellExecutionError

    sys.path.insert(0, sys.argv[3])
    from run_course import execute, failure_report

    path, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        # a cell that outlives this has hung: fail within minutes rather than the runner's quarter of an hour
        execute(path, out, timeout=300)
    except CellExecutionError:
        sys.exit(failure_report(nbformat.read(out / path.name, as_version=4), path.name))
""")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_course_runs_on_python_3_13(tmp_path):
    python = _py313_env()
    pip(python, "install", "-q", "--no-deps", "--force-reinstall", str(ROOT))
    host_torchao = freeze("colab")["torchao"][1] if (HOSTS_DIR / HOSTS["colab"][1]).is_file() else "0.10.0"
    pip(python, "install", "-q", "--no-deps", f"torchao=={host_torchao}")
    env = {**os.environ, "COURSE_MODE": "smoke", "COURSE_CACHE_DIR": str(tmp_path / "cache"),
           "COURSE_OUTPUT_DIR": str(tmp_path / "outputs")}
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE_PATH)

    def smoke() -> str:
        run = subprocess.run([str(python), str(script), str(tmp_path / "run")], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=False)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
        return run.stdout

    # with the host's torchao, peft refuses LoRA on a plain nn.Linear: the setup cell's uninstall is needed
    assert "plain nn.Linear LoRA: ImportError" in smoke()
    for command in setup_commands():
        if command[0] == "uninstall":
            pip(python, *command)
    shutil.rmtree(tmp_path / "run")
    assert "plain nn.Linear LoRA: torch.Size([2, 8])" in smoke()
    for number in ("01", "05"):
        path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        args = [str(python), "-c", RUN_NOTEBOOK, str(path), str(tmp_path / "executed"), str(ROOT / "scripts")]
        run = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
        assert run.returncode == 0, f"{path.name} on Python 3.13:\n{run.stdout[-2000:]}{run.stderr[-4000:]}"
