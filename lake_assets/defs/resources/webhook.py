"""The alert webhook resource: where alerts go (lake_assets/defs/alerts.py decides what and when)."""

import time

import requests
from dagster import AssetKey, ConfigurableResource
from pydantic import Field

from lake_assets.defs.settings import Settings

WEBHOOK_VARIABLE = "LAKE_ALERT_WEBHOOK_URL"
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"


class AlertDeliveryError(Exception):
    """The webhook did not take a message. Names the status or error class, never the URL."""


class AlertWebhook(ConfigurableResource):
    """Where alerts go: a Slack-compatible incoming webhook taking `{"text": ...}`."""

    url: str = Field(
        default="",
        description="The incoming webhook URL, a secret through EnvVar LAKE_ALERT_WEBHOOK_URL (empty: alerts off).",
    )
    ui_base_url: str = Field(
        default=DEFAULT_UI_BASE_URL, description="LAKE_UI_BASE_URL: the Dagster UI the messages link to (runs, assets)."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds to wait for the webhook to answer one POST.")
    attempts: int = Field(default=3, ge=1, le=10, description="POSTs per message before the sensor tick reports the failure.")

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def asset_link(self, key: AssetKey) -> str:
        return f"{self.ui_base_url.rstrip('/')}/assets/{'/'.join(key.path)}"

    def post(self, text: str) -> None:
        """POST one message; a 5xx, 429 or connection error is tried again with a short backoff."""
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(2**attempt, 10))
            try:
                response = requests.post(self.url, json={"text": text}, timeout=self.timeout_s)
            except requests.RequestException as error:
                # requests' messages name the URL (host and path): only the class leaves this function.
                last = type(error).__name__
                continue
            if response.status_code < 300:
                return
            last = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break
        raise AlertDeliveryError(f"alert webhook ({WEBHOOK_VARIABLE}) did not take the message: {last}") from None


def alert_webhook_from_env(settings: Settings | None = None) -> AlertWebhook:
    """The webhook as the environment describes it; the URL is bound as an `EnvVar` only when set (an
    `EnvVar` of an unset variable fails every evaluation)."""
    settings = settings or Settings.from_env()
    return AlertWebhook(ui_base_url=settings.alerts.ui_base_url, **settings.secrets({"url": WEBHOOK_VARIABLE}))
