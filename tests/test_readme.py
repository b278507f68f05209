import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands():
    blocks = code_blocks("bash")
    assert len(blocks) >= 2 and README.lstrip().startswith("# snakeaudio\n\n```bash")
    install_and_run, install_and_test = (b.strip() for b in blocks[:2])
    assert "pip install" in install_and_run and "snakeaudio" in install_and_run
    assert install_and_test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks("bash")[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_readme_python_examples_run(index):
    exec(compile(code_blocks("python")[index], f"README.md python block {index}", "exec"), {})
