"""The README's "Deploy from your machine" lines, for the tests that run them and the test that
checks the console shows the same: its code blocks, in order, with the README's example server
address replaced by a real one."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_URL = "https://chalkweb.example.com"


def deploy_blocks(public_url: str) -> dict[str, str]:
    """{"uv-index": the pyproject.toml lines, "uv-commands", "pip-commands"} for `public_url`."""
    text = README.read_text()
    section = text[text.index("## Deploy from your machine") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```(?:toml|sh)\n(.*?)```", section, re.S)
    assert len(blocks) == 3, "the README's deploy section has three code blocks"
    uv_index, uv_commands, pip_commands = (
        block.replace(EXAMPLE_URL, public_url.rstrip("/")).rstrip("\n") for block in blocks
    )
    return {"uv-index": uv_index, "uv-commands": uv_commands, "pip-commands": pip_commands}
