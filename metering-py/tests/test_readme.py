"""The README's Python example runs as written, against the server."""

from __future__ import annotations

import re

import metering

from conftest import REPO, Server


def test_the_readme_example_runs(env: Server) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})
    # The decorator's shared client is flushed at exit; here, now.
    metering.flush(timeout=30)
    assert env.event_count("org_acme") >= 2
