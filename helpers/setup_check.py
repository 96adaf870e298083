"""The setup cell's check: are the installed libraries the course's pins, and does the kernel need a restart?"""

import sys

# What was imported before this module: the setup cell imports it right after `%pip install`, so anything here
# that the install replaced on disk is running as the old version until the kernel restarts. Taken before this
# module's own imports: what they load now (packaging, say) is read from disk after the install, so it is current.
_BEFORE = frozenset(sys.modules)
LOADED_BEFORE = frozenset(name.partition(".")[0] for name in _BEFORE)

import json
import os
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers import language

# peft refuses an importable torchao older than this when it adds LoRA to a plain nn.Linear (peft.import_utils).
PEFT_TORCHAO_MIN = Version("0.16.0")
RESTART = "Colab: Runtime > Restart session; Kaggle: Run > Restart & clear cell outputs"
RESTART_KO = "Colab: 런타임 > 세션 다시 시작(Runtime > Restart session), Kaggle: Run > Restart & clear cell outputs"
RERUN = ("Run this cell again. If the same lines come back, read pip's messages above it "
         "(Kaggle: switch on Settings > Internet, which needs a phone-verified account), then run it again.")
RERUN_KO = ("이 셀을 다시 실행하세요. 같은 줄이 또 나오면 그 위에 있는 pip 메시지를 읽어 보고(Kaggle: Settings > "
            "Internet을 켜세요. 휴대폰 인증을 마친 계정이어야 합니다) 다시 실행하세요.")


def requirements_file() -> Path:
    """Return the course's requirements.txt: inside the installed package (wheel) first, else the repository's."""
    packaged = Path(__file__).with_name("requirements.txt")
    return packaged if packaged.exists() else Path(__file__).resolve().parent.parent / "requirements.txt"


def pins(path: str | os.PathLike | None = None) -> list[Requirement]:
    """Return the requirements of a requirements file (comments, blank lines and pip options skipped)."""
    path = Path(path) if path is not None else requirements_file()
    if not path.is_file():
        raise ValueError(f"path must be a requirements file, got {str(path)!r}, which does not exist.")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def installed_version(name: str) -> str | None:
    """Return the installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_problems(requirements: list[Requirement]) -> list[str]:
    """Return one line for each requirement the installed distributions do not meet."""
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        found = installed_version(req.name)
        if found is None:
            problems.append(f"{req.name}: not installed, the course needs {req.specifier}")
        elif not req.specifier.contains(found, prereleases=True):
            problems.append(f"{req.name}: {found} installed, the course needs {req.specifier}")
    return problems


def torchao_problem() -> str | None:
    """Return what to do when a torchao that peft refuses is installed, else None."""
    found = installed_version("torchao")
    if found is None or Version(found) >= PEFT_TORCHAO_MIN:
        return None
    return (f"torchao: {found} installed; peft refuses torchao < {PEFT_TORCHAO_MIN} when it adds LoRA to a plain "
            "nn.Linear (notebooks 04 and 05) and the course does not use torchao: run `%pip uninstall -y torchao`")


def closure(requirements: list[Requirement]) -> set[str]:
    """Return the distributions the requirements install, their dependencies included (canonical names)."""
    seen, todo = set(), [req for req in requirements if req.marker is None or req.marker.evaluate()]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        # a dependency behind a marker counts where the marker holds: for this Python, or for an extra asked for
        extras = sorted(req.extras) or [""]
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(dep)
    return seen


def process_start() -> float:
    """Return when this process started (seconds since the epoch)."""
    import psutil

    return psutil.Process().create_time()


def stale_modules(distributions: set[str], loaded: frozenset[str] = LOADED_BEFORE,
                  started: float | None = None) -> list[str]:
    """Return one line for each loaded module whose distribution was reinstalled after this process started."""
    started = process_start() if started is None else started
    owners = metadata.packages_distributions()
    stale = []
    for module in sorted(loaded):
        # a distribution is listed once per sys.path entry that holds it: name each one once
        for dist in dict.fromkeys(owners.get(module, [])):
            if canonicalize_name(dist) not in distributions or module == "helpers":
                continue
            path = getattr(sys.modules.get(module), "__file__", None)
            # a new file (pip writes every file of a new version) has a change time after the kernel started
            if path and (not os.path.exists(path) or os.stat(path).st_ctime > started):
                was = getattr(sys.modules[module], "__version__", "an older version")
                stale.append(f"{dist}: {was} is loaded, {installed_version(dist)} is installed")
    return stale


def course_ref_problem(ref: str) -> str | None:
    """Return what to do when the course package was installed from git at another ref than `ref`, else None."""
    try:
        text = metadata.distribution("qlora-course-helpers").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return "qlora-course-helpers: not installed (the course's `helpers` package)"
    vcs = json.loads(text or "{}").get("vcs_info") if text else None
    if not vcs:  # a local checkout (make venv): there the working tree is the course
        return None
    got = vcs.get("requested_revision") or vcs.get("commit_id", "")
    if got == ref or vcs.get("commit_id", "").startswith(ref):
        return None
    url = json.loads(text)["url"]
    return (f"the course's helpers came from {got}, this notebook is for {ref}: run "
            f'`%pip install --no-deps --force-reinstall "git+{url}@{ref}"`')


def check_install(ref: str | None = None, requirements: str | os.PathLike | None = None,
                  edition: str = "notebooks/") -> None:
    """Compare what is installed with the course's pins; raise RuntimeError saying what to do, else print one line.

    edition is the notebook's folder ("notebooks/" or "notebooks/ko/"): it sets the language of the lines that
    teach for the rest of the session (helpers.language).
    """
    if ref is not None and not (isinstance(ref, str) and re.fullmatch(r"[\w.-]+", ref)):
        raise ValueError(f"ref must be the course's tag or commit such as 'v0.2.0', got {ref!r}.")
    language.set_language(language.edition_language(edition))
    reqs = pins(requirements)
    problems = version_problems(reqs) + [p for p in (torchao_problem(), ref and course_ref_problem(ref)) if p]
    if problems:
        raise RuntimeError(language.pick("The installed libraries differ from the course's pins:\n",
                                         "설치된 라이브러리가 코스가 고정한 버전과 다릅니다:\n")
                           + "".join(f"  - {p}\n" for p in problems) + language.pick(RERUN, RERUN_KO))
    stale = stale_modules(closure(reqs))
    if stale:
        raise RuntimeError(language.pick(
            "Restart needed: the install replaced libraries this kernel had already loaded:\n",
            "다시 시작해야 합니다: 이 커널이 이미 불러온 라이브러리를 설치가 바꿨습니다:\n")
                           + "".join(f"  - {s}\n" for s in stale)
                           + language.pick(f"{RESTART}; then run the notebook from the top (this cell will install "
                                           "nothing).",
                                           f"{RESTART_KO}. 그런 다음 노트북을 처음부터 실행하세요(이 셀은 이번에는 "
                                           "아무것도 설치하지 않습니다)."))
    print(language.pick(f"Setup checked: {len(reqs)} pinned libraries as required" + (f", course {ref}" if ref else ""),
                        f"설치 확인 완료: 고정 버전 라이브러리 {len(reqs)}개가 요구대로 설치되어 있습니다"
                        + (f", 코스 {ref}" if ref else "")))
