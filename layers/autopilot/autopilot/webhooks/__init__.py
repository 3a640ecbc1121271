"""Chat-bot webhooks: members check in by typing a keyword in Slack, Telegram or any
platform that can sign its requests (``signatures``: pure verification; ``service``:
from a verified request to a check-in and the platform's answer)."""
