"""All of Lyra's settings in one place, read from ``LYRA_*`` variables and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _templates_dir() -> Path:
    """``lyra_bot/templates`` in an installed wheel, ``templates/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "templates"
    return installed if installed.is_dir() else here.parent / "templates"


TEMPLATES_DIR = _templates_dir()

# The shipped placeholder: anyone who knows it could forge reply, opt-out and check tokens.
DEFAULT_SECRET_KEY = "change-me-in-production"
MIN_SECRET_KEY_LENGTH = 32
MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class Settings(BaseSettings):
    """Process-wide settings; per-owner policy lives on the Tenant row instead."""

    model_config = SettingsConfigDict(env_prefix="LYRA_", env_file=".env", extra="ignore")

    # Store
    database_url: str = "sqlite://lyra.db"
    db_pool_max: int = 10

    # Identity and links
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    secret_key_id: str = "k1"
    old_secret_keys: dict[str, SecretStr] = Field(default_factory=dict)
    public_url: str = "http://127.0.0.1:8080"
    reply_token_days: int = 30

    # HTTP service
    http_host: str = "127.0.0.1"
    http_port: int = 8080

    # Intake API (/api/v1) and rate limits (0 = no limit)
    api_max_bytes: int = 64 * 1024
    api_rate_per_minute: int = 120
    claims_per_minute: int = 10
    partner_claims_per_minute: int = 30
    rate_limit_storage: str = "async+memory://"

    # Outbound mail
    mail_from: str = "Lyra <lyra@localhost>"
    inbound_address: str = "leads@localhost"
    outbox_dir: Path = Path("outbox")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout: float = 30.0
    digest_max_leads: int = 10
    report_max_partners: int = 15

    # Inbound mail (replies): IMAP poller and/or the webhook of a provider that pushes mail
    imap_host: str | None = None
    imap_port: int = 993
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_tls: Literal["none", "starttls", "tls"] = "tls"
    imap_folder: str = "INBOX"
    imap_processed_folder: str = "Processed"
    imap_failed_folder: str = "Failed"
    imap_idle_seconds: float = 300.0
    imap_poll_seconds: float = 60.0
    imap_timeout: float = 30.0
    # Several instances: one polls IMAP at a time, holding a lease it renews every third of this
    imap_lease_seconds: float = 30.0
    inbound_webhook_secret: SecretStr | None = None
    inbound_max_bytes: int = 10 * 1024 * 1024
    # Days an inbound message's idempotency key (mail, Slack request, API Idempotency-Key)
    # is kept; a re-delivery within them is answered as a duplicate
    inbound_key_days: int = Field(30, ge=1)

    # Outbox worker
    outbox_poll_seconds: float = 1.0
    outbox_batch: int = 50
    outbox_max_attempts: int = 8
    outbox_backoff_initial: float = 30.0
    outbox_backoff_max: float = 3600.0
    outbox_lease_seconds: float = 300.0

    # Slack (off while no bot token is set)
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_digest_max_leads: int = 200
    # An acked Slack request not handled this long after it was taken is taken over (seconds)
    slack_recover_seconds: float = 30.0

    # Start this process's clock at this instant (ISO 8601 with offset), then let it run:
    # for rehearsals and tests, never in production; unset = the system clock
    clock_start: AwareDatetime | None = None

    # This process's name in leases (default: host:pid:random, unique per process)
    instance_id: str = ""

    # Scheduler (sweeps inside lyra-bot run)
    scheduler_enabled: bool = True
    # When > 0, every job runs at least this often, in seconds (fault tests, demos); 0 = as planned
    scheduler_tick_seconds: float = 0.0

    templates_dir: Path = TEMPLATES_DIR
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @property
    def slack_enabled(self) -> bool:
        """Slack is on when a bot token is set (an empty value in ``.env`` counts as unset)."""
        return bool(self.slack_bot_token and self.slack_bot_token.get_secret_value().strip())


def secret_key_problem(settings: Settings) -> str | None:
    """One line saying why ``LYRA_SECRET_KEY`` must not sign anything, or None if it may.

    A service refuses to start with it: a missing, shipped or short key lets anyone who
    guesses it forge reply, opt-out and contact-check tokens."""
    key = settings.secret_key.get_secret_value()
    if "secret_key" not in settings.model_fields_set or not key.strip():
        problem = "LYRA_SECRET_KEY is not set"
    elif key == DEFAULT_SECRET_KEY:
        problem = f"LYRA_SECRET_KEY is the shipped placeholder '{DEFAULT_SECRET_KEY}'"
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        problem = (
            f"LYRA_SECRET_KEY is too short ({len(key)} characters, "
            f"at least {MIN_SECRET_KEY_LENGTH})"
        )
    else:
        return None
    return f"{problem}; make one with: {MAKE_SECRET_KEY}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
