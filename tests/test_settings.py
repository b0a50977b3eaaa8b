"""Configuration: every setting is documented in .env.example, and that file loads."""

from __future__ import annotations

import re
from pathlib import Path

from lyra_bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting_and_loads():
    text = (ROOT / ".env.example").read_text()
    listed = {m.lower() for m in re.findall(r"^#?\s*LYRA_([A-Z0-9_]+)=", text, re.MULTILINE)}
    assert listed == set(Settings.model_fields), set(Settings.model_fields) ^ listed
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.database_url == "sqlite://lyra.db"
